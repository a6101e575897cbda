package heartbeat

import (
	"fmt"
	"strings"
)

// Schema, Table and Publication name the objects walprobe owns.
const (
	Schema      = "walprobe"
	Table       = "heartbeat"
	QualTable   = Schema + "." + Table
	Publication = "walprobe_heartbeat"
)

// SetupOptions says which optional parts of the setup SQL to emit.
type SetupOptions struct {
	// Role, when set, receives the least privileges the probe needs:
	// INSERT/UPDATE/SELECT on the table and USAGE on the schema.
	Role string
	// Publication, when true, creates the walprobe_heartbeat publication
	// holding only the heartbeat table (for the logical stream, and for
	// subscribers that subscribe to it directly).
	Publication bool
	// UserPublication, when set, adds the heartbeat table to the user's own
	// publication so subscribers measure the apply worker the application
	// depends on.
	UserPublication string
}

// TableSQL is the DDL of the heartbeat table. It is also what a logical
// subscriber needs before it can receive the table.
//
// fillfactor=50 leaves room on the page so every upsert is a HOT update and
// page pruning reclaims dead versions: the heap stays at one page.
func TableSQL() []string {
	return []string{
		"CREATE SCHEMA IF NOT EXISTS " + Schema,
		"CREATE TABLE IF NOT EXISTS " + QualTable + ` (
    probe_id   text PRIMARY KEY,
    seq        bigint NOT NULL,
    written_at timestamptz NOT NULL
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)`,
	}
}

// SetupSQL returns the statements that prepare a primary for walprobe, in
// order. Every statement is idempotent where PostgreSQL allows it.
func SetupSQL(o SetupOptions) []string {
	stmts := TableSQL()
	if o.Publication {
		// CREATE PUBLICATION has no IF NOT EXISTS: guard it in a DO block.
		stmts = append(stmts, fmt.Sprintf(`DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '%s') THEN
        CREATE PUBLICATION %s FOR TABLE %s;
    END IF;
END $$`, Publication, Publication, QualTable))
	}
	if o.UserPublication != "" {
		stmts = append(stmts, AddToPublicationSQL(o.UserPublication))
	}
	if o.Role != "" {
		stmts = append(stmts, GrantSQL(o.Role)...)
	}
	return stmts
}

// GrantSQL gives role the least privileges the probe needs on the table.
func GrantSQL(role string) []string {
	r := QuoteIdent(role)
	return []string{
		fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", Schema, r),
		fmt.Sprintf("GRANT SELECT, INSERT, UPDATE ON %s TO %s", QualTable, r),
	}
}

// AddToPublicationSQL adds the heartbeat table to publication pub unless
// it is already there (ALTER PUBLICATION … ADD TABLE fails for a member,
// and for a FOR ALL TABLES publication, which holds it anyway).
func AddToPublicationSQL(pub string) string {
	return fmt.Sprintf(`DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = '%s' AND tablename = '%s') THEN
        ALTER PUBLICATION %s ADD TABLE %s;
    END IF;
END $$`, quoteLiteral(pub), Schema, Table, QuoteIdent(pub), QualTable)
}

// quoteLiteral quotes s as a standard SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Script joins statements into one SQL script, each ending in a semicolon.
func Script(stmts []string) string {
	var b strings.Builder
	for _, s := range stmts {
		b.WriteString(s)
		b.WriteString(";\n")
	}
	return b.String()
}

// QuoteIdent quotes a PostgreSQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
