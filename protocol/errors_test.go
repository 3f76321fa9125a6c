package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/drover-dev/drover/protocol"
)

func TestCodeHTTPStatus(t *testing.T) {
	want := map[protocol.Code]int{
		protocol.CodeInvalidArgument:  http.StatusBadRequest,
		protocol.CodeUnauthenticated:  http.StatusUnauthorized,
		protocol.CodePermissionDenied: http.StatusForbidden,
		protocol.CodeNotFound:         http.StatusNotFound,
		protocol.CodeConflict:         http.StatusConflict,
		protocol.CodeTooLarge:         http.StatusRequestEntityTooLarge,
		protocol.CodeQuotaExceeded:    http.StatusUnprocessableEntity,
		protocol.CodeUnavailable:      http.StatusServiceUnavailable,
		protocol.CodeInternal:         http.StatusInternalServerError,
		protocol.Code("bogus"):        http.StatusInternalServerError,
	}
	for code, status := range want {
		if got := code.HTTPStatus(); got != status {
			t.Errorf("%s: status %d, want %d", code, got, status)
		}
	}
}

func TestErrorIsAndAs(t *testing.T) {
	nf := fmt.Errorf("lookup: %w", protocol.NotFound("tenant", "acme"))
	if !errors.Is(nf, protocol.ErrNotFound) {
		t.Fatal("a wrapped not_found is not ErrNotFound")
	}
	if errors.Is(nf, protocol.ErrConflict) {
		t.Fatal("not_found matches ErrConflict")
	}
	//lint:ignore SA1032 the arguments are swapped on purpose: the relation is one-way
	if errors.Is(protocol.ErrNotFound, protocol.NotFound("tenant", "acme")) {
		t.Fatal("a sentinel matches an error with a message")
	}
	e := protocol.AsError(nf)
	if e.Code != protocol.CodeNotFound || e.Message != `tenant "acme" not found` {
		t.Fatalf("AsError: %+v", e)
	}
	if got := protocol.AsError(errors.New("disk on fire")); got.Code != protocol.CodeInternal || got.Message != "disk on fire" {
		t.Fatalf("AsError of a plain error: %+v", got)
	}
	fe := protocol.FieldError("spec.command", "is required")
	if fe.Error() != "spec.command: is required" || !errors.Is(fe, protocol.ErrInvalid) {
		t.Fatalf("FieldError: %v", fe)
	}
	if got := protocol.Errorf(protocol.CodeUnavailable, "no leader").Error(); got != "no leader" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestErrorBodyShape(t *testing.T) {
	b, _ := json.Marshal(protocol.ErrorBody{Error: protocol.FieldError("name", "bad")})
	if string(b) != `{"error":{"code":"invalid_argument","message":"bad","field":"name"}}` {
		t.Fatalf("error body: %s", b)
	}
}
