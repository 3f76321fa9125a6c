package state

// Environments, plans and the servers' own records: rows that operators
// and servers write whole.

func (w *writer) environmentUpsert(c *EnvironmentUpsert) error {
	e := c.Environment
	e.ModifyIndex = w.index
	w.insert(tableEnvironments, &e)
	return nil
}

func (w *writer) planUpsert(c *PlanUpsert) error {
	p := c.Plan
	p.ModifyIndex = w.index
	w.insert(tablePlans, &p)
	return nil
}

func (w *writer) serverUpsert(c *ServerUpsert) error {
	m := c.Member
	m.State = ""
	w.insert(tableServers, &m)
	return nil
}

func (w *writer) serverRemove(c *NameBody) error {
	if raw := w.first(tableServers, c.Name); raw != nil {
		w.delete(tableServers, raw)
	}
	return nil
}
