// Package uid makes the random ids of Drover's objects: servers, nodes,
// tokens, replicas and deployments. Ids are random version-4 UUIDs, so
// that any server can choose one before proposing the command that uses it
// and the FSM never has to.
package uid

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a random id in UUID form.
func New() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
