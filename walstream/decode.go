package walstream

import (
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/walprobe/walprobe/heartbeat"
)

// decoder follows one pgoutput session and picks this probe's beats out of
// it. It holds one relation (the heartbeat table) and one transaction at a
// time, so its memory is fixed whatever the publication carries.
type decoder struct {
	probeID string

	rel     uint32 // relation id of walprobe.heartbeat; valid when haveRel
	haveRel bool
	idCol   int // column index of probe_id
	seqCol  int // column index of seq

	inTxn   bool
	commit  time.Time // commit timestamp from Begin
	seq     int64     // highest seq of our row in the transaction; valid when haveSeq
	haveSeq bool
}

// beatCommit is one committed transaction that carried our heartbeat row.
type beatCommit struct {
	Seq    int64
	Commit time.Time // the primary's commit timestamp
}

// handle feeds one decoded message. It returns a beatCommit when m is the
// Commit of a transaction that carried our row. Messages it does not need
// (other relations, types, origins, truncates, deletes, other probes' rows)
// are ignored.
func (d *decoder) handle(m pglogrepl.Message) (beatCommit, bool) {
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		d.relation(m)
	case *pglogrepl.BeginMessage:
		d.inTxn, d.commit, d.seq, d.haveSeq = true, m.CommitTime, 0, false
	case *pglogrepl.InsertMessage:
		if d.haveRel && m.RelationID == d.rel {
			d.row(m.Tuple)
		}
	case *pglogrepl.UpdateMessage:
		if d.haveRel && m.RelationID == d.rel {
			d.row(m.NewTuple)
		}
	case *pglogrepl.CommitMessage:
		bc, ok := beatCommit{Seq: d.seq, Commit: d.commit}, d.inTxn && d.haveSeq
		d.inTxn, d.haveSeq = false, false
		return bc, ok
	}
	return beatCommit{}, false
}

// relation remembers the heartbeat table's id and column positions, and
// forgets them when the id is reused for something else (the table was
// renamed or its columns changed).
func (d *decoder) relation(m *pglogrepl.RelationMessage) {
	if m.Namespace != heartbeat.Schema || m.RelationName != heartbeat.Table {
		if d.haveRel && m.RelationID == d.rel {
			d.haveRel = false
		}
		return
	}
	id, seq := -1, -1
	for i, c := range m.Columns {
		switch c.Name {
		case "probe_id":
			id = i
		case "seq":
			seq = i
		}
	}
	d.haveRel = id >= 0 && seq >= 0
	d.rel, d.idCol, d.seqCol = m.RelationID, id, seq
}

func (d *decoder) row(t *pglogrepl.TupleData) {
	if t == nil || len(t.Columns) <= max(d.idCol, d.seqCol) {
		return
	}
	id := t.Columns[d.idCol]
	if id.DataType != pglogrepl.TupleDataTypeText || string(id.Data) != d.probeID {
		return
	}
	seq, err := t.Columns[d.seqCol].Int64()
	if err != nil {
		return
	}
	if !d.haveSeq || seq > d.seq {
		d.seq, d.haveSeq = seq, true
	}
}
