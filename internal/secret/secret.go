// Package secret makes and checks Drover's bearer secrets: API tokens,
// node secrets, the agent join token and the servers' join token. Secrets
// are 256-bit random values; the state keeps only their SHA-256 hashes.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// New returns a random 256-bit secret in hex.
func New() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Hash is how secrets are stored: SHA-256 in hex. The secrets are random
// 256-bit values, so a plain hash is enough; a slow password hash would only
// make every request slower.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// FromBearer returns the secret of an Authorization header of the form
// "Bearer SECRET" (any case), or "".
func FromBearer(header string) string {
	if len(header) > 7 && strings.EqualFold(header[:7], "bearer ") {
		return strings.TrimSpace(header[7:])
	}
	return ""
}

// JoinPrefix starts a join token string that carries the CA fingerprint.
const JoinPrefix = "drover-join."

// JoinToken is an agent join token as operators pass it around: the secret
// the servers check and, when the cluster serves TLS with its own CA, the
// SHA-256 fingerprint of that CA's certificate, so that an agent given only
// this one string can verify the servers it dials (like kubeadm's discovery
// token CA cert hash).
type JoinToken struct {
	Secret        string
	CAFingerprint string // hex SHA-256 of the CA certificate's DER; empty for none
}

// String formats the token: drover-join.SECRET.FINGERPRINT, or
// drover-join.SECRET without a CA.
func (t JoinToken) String() string {
	if t.CAFingerprint == "" {
		return JoinPrefix + t.Secret
	}
	return JoinPrefix + t.Secret + "." + t.CAFingerprint
}

// ParseJoinToken reads a join token. A string without the drover-join.
// prefix is a bare secret (as set with -agent-join-token).
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, JoinPrefix)
	if !ok {
		if s == "" {
			return JoinToken{}, fmt.Errorf("join token is empty")
		}
		return JoinToken{Secret: s}, nil
	}
	sec, fp, _ := strings.Cut(rest, ".")
	if sec == "" {
		return JoinToken{}, fmt.Errorf("join token %s...: no secret", JoinPrefix)
	}
	if fp != "" {
		fp = strings.ToLower(strings.TrimPrefix(fp, "sha256:"))
		if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
			return JoinToken{}, fmt.Errorf("join token: the CA fingerprint after the second dot must be 64 hex digits")
		}
	}
	return JoinToken{Secret: sec, CAFingerprint: fp}, nil
}
