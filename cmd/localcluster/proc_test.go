package localcluster

import "testing"

func TestTail(t *testing.T) {
	tests := []struct {
		give string
		n    int
		want string
	}{
		{give: "a\nb\nc\n", n: 2, want: "b\nc"},
		{give: "a\nb", n: 5, want: "a\nb"},
		{give: "", n: 3, want: ""},
	}
	for _, tt := range tests {
		if got := tail(tt.give, tt.n); got != tt.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tt.give, tt.n, got, tt.want)
		}
	}
}
