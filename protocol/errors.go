// Package protocol holds Drover's wire contracts: the admin API resources,
// the agent<->server messages, their validation rules and their limits. It
// imports nothing of server/ or agent/ so that both sides, the CLI and tests
// share one definition of what is valid.
package protocol

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an API error code (API.md, "Errors").
type Code string

// The error codes of the HTTP API and the HTTP status each maps to.
const (
	CodeInvalidArgument  Code = "invalid_argument"
	CodeUnauthenticated  Code = "unauthenticated"
	CodePermissionDenied Code = "permission_denied"
	CodeNotFound         Code = "not_found"
	CodeConflict         Code = "conflict"
	CodeTooLarge         Code = "too_large"
	CodeQuotaExceeded    Code = "quota_exceeded"
	CodeUnavailable      Code = "unavailable"
	CodeInternal         Code = "internal"
)

// HTTPStatus is the status code an error with code c is answered with.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInvalidArgument:
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodePermissionDenied:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeQuotaExceeded:
		return http.StatusUnprocessableEntity
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is an error with an API code and, for bad input, the field at fault.
// It is what the API answers as {"error": {...}}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Outcome says, for a change answered `unavailable`, whether it was
	// applied: OutcomeNotApplied (safe to send again) or OutcomeUnknown
	// (it may have been: read the state, or send it again with the same
	// Idempotency-Key).
	Outcome string `json:"outcome,omitempty"`
}

// Outcomes of a change answered `unavailable` (Error.Outcome, and the
// X-Drover-Outcome header).
const (
	OutcomeNotApplied = "not_applied"
	OutcomeUnknown    = "unknown"
)

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, protocol.ErrNotFound) works on any not_found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinel errors to compare with errors.Is; they match any error of their code.
var (
	ErrNotFound      = &Error{Code: CodeNotFound}
	ErrConflict      = &Error{Code: CodeConflict}
	ErrInvalid       = &Error{Code: CodeInvalidArgument}
	ErrUnavailable   = &Error{Code: CodeUnavailable}
	ErrQuotaExceeded = &Error{Code: CodeQuotaExceeded}
)

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid_argument error naming field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound returns a not_found error for the object kind and name.
func NotFound(kind, name string) *Error {
	return Errorf(CodeNotFound, "%s %q not found", kind, name)
}

// AsError returns err as an *Error, wrapping errors of unknown kind as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("request body over %d bytes", tooLarge.Limit)}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// ErrorBody is the JSON envelope of an error answer.
type ErrorBody struct {
	Error *Error `json:"error"`
}
