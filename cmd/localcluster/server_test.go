package localcluster

import "testing"

func TestQuoteLiteral(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "", want: "''"},
		{give: "a b", want: "'a b'"},
		{give: "it's", want: "'it''s'"},
	}
	for _, tt := range tests {
		if got := quoteLiteral(tt.give); got != tt.want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", tt.give, got, tt.want)
		}
	}
}
