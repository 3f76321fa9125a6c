package state

// Every test of the package applies its commands with each row read by id
// checked against the transaction (rows.first).
func init() { verifyRows = true }
