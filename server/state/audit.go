package state

import (
	"strconv"
	"time"
)

// Meta keys of the audit log.
const (
	metaAuditCount     = "audit_count"
	metaAuditRetention = "audit_retention"
)

// AuditRetention says how many audit records are kept and for how long.
// The FSM drops the oldest records past either limit as new ones arrive.
type AuditRetention struct {
	// MaxRecords is the most records kept; MaxAuditRecords when zero.
	MaxRecords int `json:"max_records,omitempty"`
	// MaxAge drops records older than this, measured from the time of the
	// command that adds a record; zero keeps them regardless of age.
	MaxAge time.Duration `json:"max_age,omitempty"`
}

// WithDefaults fills zero fields.
func (r AuditRetention) WithDefaults() AuditRetention {
	if r.MaxRecords <= 0 || r.MaxRecords > MaxAuditRecords {
		r.MaxRecords = MaxAuditRecords
	}
	if r.MaxAge < 0 {
		r.MaxAge = 0
	}
	return r
}

// AuditRetention returns the audit log's retention, with defaults filled.
func (s *Snapshot) AuditRetention() AuditRetention {
	var r AuditRetention
	if m := s.Meta(metaAuditRetention); m != nil {
		r.MaxRecords = int(m.N)
		if age, err := strconv.ParseInt(m.Value, 10, 64); err == nil {
			r.MaxAge = time.Duration(age)
		}
	}
	return r.WithDefaults()
}

// auditRetention applies CmdAuditRetention: records already past the new
// limits are dropped at once.
func (w *writer) auditRetention(c *AuditRetention) error {
	r := c.WithDefaults()
	m := &Meta{Key: metaAuditRetention, N: uint64(r.MaxRecords), Value: strconv.FormatInt(int64(r.MaxAge), 10)}
	w.insert(tableMeta, m)
	if w.meta(metaAuditCount).N > 0 {
		w.pruneAudit()
	}
	return nil
}

// auditAppend writes records of the servers' own (refused requests).
// Sequence 0 is the envelope's own record (see apply).
func (w *writer) auditAppend(c *AuditAppend) error {
	for i, r := range c.Records {
		w.audit(r, i+1)
	}
	return nil
}

// stateRestored marks every table changed after a snapshot restore, and
// records who restored it.
func (w *writer) stateRestored(c *AuditAppend) error {
	w.touch(Tables...)
	return w.auditAppend(c)
}
