package protocol

// Routes is the answer of GET /v1/routes: every instance the gateways
// route to, with its healthy replicas, as of the state's Index.
type Routes struct {
	Index  uint64  `json:"index"`
	Routes []Route `json:"routes"`
}

// Route is one instance's entry in the gateways' table: the host names it
// answers (besides the generated {name}.{tenant}.{domain}) and the
// replicas that take its traffic. An instance with no backend is still
// listed, so that gateways answer 503 for it rather than 404.
type Route struct {
	Tenant   string    `json:"tenant"`
	Name     string    `json:"name"`
	Domains  []string  `json:"domains,omitempty"`
	Backends []Backend `json:"backends"`
}

// Backend is a replica taking an instance's traffic.
type Backend struct {
	Replica string `json:"replica"`
	// Addr is host:port, the node's address and the route's port.
	Addr string `json:"addr"`
}
