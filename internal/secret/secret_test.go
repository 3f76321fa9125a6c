package secret

import (
	"strings"
	"testing"
)

func TestJoinTokenRoundTrip(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in      string
		want    JoinToken
		wantErr bool
	}{
		{in: "plain-secret", want: JoinToken{Secret: "plain-secret"}},
		{in: "drover-join.s3cret", want: JoinToken{Secret: "s3cret"}},
		{in: "drover-join.s3cret." + fp, want: JoinToken{Secret: "s3cret", CAFingerprint: fp}},
		{in: " drover-join.s3cret.sha256:" + strings.ToUpper(fp) + "\n", want: JoinToken{Secret: "s3cret", CAFingerprint: fp}},
		{in: "drover-join.s3cret.abc", wantErr: true},
		{in: "drover-join.", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ParseJoinToken(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseJoinToken(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseJoinToken(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if strings.HasPrefix(strings.TrimSpace(tc.in), JoinPrefix) {
			again, err := ParseJoinToken(got.String())
			if err != nil || again != got {
				t.Errorf("round trip of %q through %q: %+v, %v", tc.in, got.String(), again, err)
			}
		}
	}
}

func TestSecretsDiffer(t *testing.T) {
	a, b := New(), New()
	if a == b || len(a) != 64 {
		t.Fatalf("New() gave %q and %q", a, b)
	}
	if again := Hash(a); Hash(a) == a || again != Hash(a) || Hash(a) == Hash(b) {
		t.Fatal("Hash is not a function of its input alone")
	}
	if !Equal(a, a) || Equal(a, b) {
		t.Fatal("Equal is wrong")
	}
}
