package walstream

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func textCol(s string) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(s)), Data: []byte(s)}
}

func tuple(id, seq string) *pglogrepl.TupleData {
	return &pglogrepl.TupleData{ColumnNum: 3, Columns: []*pglogrepl.TupleDataColumn{textCol(id), textCol(seq), textCol("2026-01-01 00:00:00+00")}}
}

func heartbeatRel(id uint32) *pglogrepl.RelationMessage {
	return &pglogrepl.RelationMessage{RelationID: id, Namespace: "walprobe", RelationName: "heartbeat", ColumnNum: 3,
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "probe_id"}, {Name: "seq"}, {Name: "written_at"}}}
}

func TestDecoder(t *testing.T) {
	commit := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	begin := &pglogrepl.BeginMessage{CommitTime: commit}
	end := &pglogrepl.CommitMessage{CommitTime: commit}
	other := &pglogrepl.RelationMessage{RelationID: 7, Namespace: "public", RelationName: "t",
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "probe_id"}, {Name: "seq"}}}
	tests := []struct {
		name   string
		give   []pglogrepl.Message
		want   beatCommit
		wantOK bool
	}{
		{"update of our row", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "42")}, end},
			beatCommit{Seq: 42, Commit: commit}, true},
		{"insert of our row", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.InsertMessage{RelationID: 5, Tuple: tuple("me", "1")}, end},
			beatCommit{Seq: 1, Commit: commit}, true},
		{"other probe", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("you", "9")}, end},
			beatCommit{}, false},
		{"other relation same shape", []pglogrepl.Message{heartbeatRel(5), other, begin, &pglogrepl.UpdateMessage{RelationID: 7, NewTuple: tuple("me", "9")}, end},
			beatCommit{}, false},
		{"relation not yet seen", []pglogrepl.Message{begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "9")}, end},
			beatCommit{}, false},
		{"id reused by another table", []pglogrepl.Message{heartbeatRel(5), &pglogrepl.RelationMessage{RelationID: 5, Namespace: "public", RelationName: "x"},
			begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "9")}, end}, beatCommit{}, false},
		{"highest seq in one txn", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "3")},
			&pglogrepl.UpdateMessage{RelationID: 5, NewTuple: tuple("me", "4")}, end}, beatCommit{Seq: 4, Commit: commit}, true},
		{"null seq", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: &pglogrepl.TupleData{
			Columns: []*pglogrepl.TupleDataColumn{textCol("me"), {DataType: pglogrepl.TupleDataTypeNull}, textCol("x")}}}, end}, beatCommit{}, false},
		{"short tuple", []pglogrepl.Message{heartbeatRel(5), begin, &pglogrepl.UpdateMessage{RelationID: 5, NewTuple: &pglogrepl.TupleData{
			Columns: []*pglogrepl.TupleDataColumn{textCol("me")}}}, end}, beatCommit{}, false},
		{"commit without begin", []pglogrepl.Message{heartbeatRel(5), end}, beatCommit{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decoder{probeID: "me"}
			var (
				got   beatCommit
				gotOK bool
			)
			for _, m := range tt.give {
				if bc, ok := d.handle(m); ok {
					got, gotOK = bc, ok
				}
			}
			if gotOK != tt.wantOK || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, gotOK, tt.want, tt.wantOK)
			}
			if d.inTxn {
				t.Errorf("decoder still in a transaction after commit")
			}
		})
	}
}
