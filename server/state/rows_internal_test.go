package state

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// mismatches are the reads of rows that differed from the transaction's.
var mismatches struct {
	sync.Mutex
	seen []string
}

// Every test of the package applies its commands with each row read by id
// checked against the transaction (rows.first); the run fails if one
// differed, whichever test made it.
func init() {
	rowMismatch = func(m string) {
		mismatches.Lock()
		defer mismatches.Unlock()
		mismatches.seen = append(mismatches.seen, m)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	mismatches.Lock()
	defer mismatches.Unlock()
	for i, m := range mismatches.seen {
		if i == 10 {
			fmt.Fprintf(os.Stderr, "... and %d more\n", len(mismatches.seen)-i)
			break
		}
		fmt.Fprintln(os.Stderr, "FAIL:", m)
	}
	if len(mismatches.seen) > 0 && code == 0 {
		code = 1
	}
	os.Exit(code)
}
