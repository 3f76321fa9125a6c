package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

// A backup larger than the 1 MiB limit of ordinary request bodies restores:
// the limit of PUT /v1/operator/snapshot is its own. (One server: the test
// cluster's 50 ms Raft timeouts do not survive restoring megabytes under
// the race detector; forwarding has its own tests.)
func TestRestoreSnapshotOverOneMiB(t *testing.T) {
	e := newEnv(t, envConfig{Servers: 1})
	labels := map[string]string{}
	for i := 0; i < protocol.MaxLabels; i++ {
		labels[fmt.Sprintf("key-%02d", i)] = strings.Repeat("v", protocol.MaxLabelValueBytes)
	}
	const tenants = 80 // 80 × 64 × 255 bytes of labels: over 1.3 MB
	for i := 0; i < tenants; i++ {
		must(t, http.StatusCreated, "POST", e.url()+"/v1/tenants", map[string]any{"name": fmt.Sprintf("t%d", i), "labels": labels}, nil)
	}
	resp, err := http.Get(e.url() + "/v1/operator/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	backup, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("save: %d %v", resp.StatusCode, err)
	}
	if len(backup) <= protocol.MaxBodyBytes {
		t.Fatalf("backup of %d bytes is not over the body limit; the test needs more data", len(backup))
	}
	must(t, http.StatusNoContent, "DELETE", e.url()+"/v1/tenants/t0", nil, nil)

	must(t, http.StatusOK, "PUT", e.url()+"/v1/operator/snapshot", backup, nil)
	var list []protocol.Tenant
	must(t, http.StatusOK, "GET", e.url()+"/v1/tenants", nil, &list)
	if len(list) != tenants {
		t.Fatalf("after restore: %d tenants, want %d", len(list), tenants)
	}
}
