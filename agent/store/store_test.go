package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent", "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

func sampleReplica(id string) Replica {
	return Replica{
		ID:        id,
		PID:       4242,
		StartTime: 987654321,
		Restarts:  2,
		Ports:     map[string]int{"http": 20001, "admin": 20002},
		Spec:      json.RawMessage(`{"version":"1.4.2","command":["/opt/crm/bin/crm"]}`),
		State:     "running",
		UpdatedAt: time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.UTC),
	}
}

func equalReplica(t *testing.T, got, want Replica) {
	t.Helper()
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, want.UpdatedAt)
	}
	got.UpdatedAt, want.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("replica = %+v\nwant      %+v (spec %s vs %s)", got, want, got.Spec, want.Spec)
	}
}

func TestEmpty(t *testing.T) {
	s, _ := openTemp(t)
	if id, err := s.Identity(); err != nil || id != (Identity{}) {
		t.Errorf("Identity() = %+v, %v; want zero", id, err)
	}
	if gen, err := s.Generation(); err != nil || gen != 0 {
		t.Errorf("Generation() = %d, %v; want 0", gen, err)
	}
	if rs, err := s.ListReplicas(); err != nil || len(rs) != 0 {
		t.Errorf("ListReplicas() = %v, %v; want none", rs, err)
	}
	if _, err := s.GetReplica("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetReplica(unknown) error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteReplica("nope"); err != nil {
		t.Errorf("DeleteReplica(unknown) = %v, want nil", err)
	}
}

func TestRoundTripAndReopen(t *testing.T) {
	s, path := openTemp(t)
	id := Identity{NodeID: "node-1", Secret: "s3cret"}
	if err := s.SetIdentity(id); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGeneration(1<<40 + 7); err != nil {
		t.Fatal(err)
	}
	want := sampleReplica("r-1")
	if err := s.PutReplica(want); err != nil {
		t.Fatal(err)
	}
	bare := Replica{ID: "r-2", State: "pending"}
	if err := s.PutReplica(bare); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, s *Store) {
		t.Helper()
		if got, err := s.Identity(); err != nil || got != id {
			t.Errorf("Identity() = %+v, %v; want %+v", got, err, id)
		}
		if got, err := s.Generation(); err != nil || got != 1<<40+7 {
			t.Errorf("Generation() = %d, %v", got, err)
		}
		got, err := s.GetReplica("r-1")
		if err != nil {
			t.Fatal(err)
		}
		equalReplica(t, got, want)
		got, err = s.GetReplica("r-2")
		if err != nil {
			t.Fatal(err)
		}
		equalReplica(t, got, bare)
	}
	check(t, s)
	check(t, reopen(t, s, path))
}

func TestOverwrite(t *testing.T) {
	s, _ := openTemp(t)
	r := sampleReplica("r-1")
	if err := s.PutReplica(r); err != nil {
		t.Fatal(err)
	}
	r.PID, r.Restarts, r.State, r.Ports = 5000, 3, "failed", nil
	if err := s.PutReplica(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetReplica("r-1")
	if err != nil {
		t.Fatal(err)
	}
	equalReplica(t, got, r)
	if err := s.SetIdentity(Identity{NodeID: "node-2"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Identity(); got != (Identity{NodeID: "node-2"}) {
		t.Errorf("Identity() after replacing = %+v", got)
	}
}

func TestDeleteAndListOrder(t *testing.T) {
	s, path := openTemp(t)
	ids := []string{"r-c", "r-a", "r-e", "r-b", "r-d"}
	for _, id := range ids {
		if err := s.PutReplica(sampleReplica(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteReplica("r-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetReplica("r-b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetReplica(deleted) error = %v, want ErrNotFound", err)
	}
	listIDs := func(s *Store) []string {
		rs, err := s.ListReplicas()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.ID)
		}
		return got
	}
	want := []string{"r-a", "r-c", "r-d", "r-e"}
	if got := listIDs(s); !reflect.DeepEqual(got, want) {
		t.Errorf("ListReplicas IDs = %v, want %v", got, want)
	}
	if got := listIDs(reopen(t, s, path)); !reflect.DeepEqual(got, want) {
		t.Errorf("ListReplicas IDs after reopen = %v, want %v", got, want)
	}
}

func TestInvalidInput(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.PutReplica(Replica{}); err == nil {
		t.Error("PutReplica with empty ID succeeded")
	}
	if err := s.PutReplica(Replica{ID: "r-1", Spec: json.RawMessage(`{not json`)}); err == nil {
		t.Error("PutReplica with invalid spec JSON succeeded")
	}
	if _, err := s.GetReplica("r-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed put left a record: %v", err)
	}
	if err := s.SetIdentity(Identity{Secret: "x"}); err == nil {
		t.Error("SetIdentity with empty node ID succeeded")
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	s2, err := Open(path)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held store succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another drover agent") {
		t.Errorf("error %q should name the file and the likely cause", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("second Open waited %s", waited)
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("store file mode = %o, want 600", mode)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion+1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a store written by a newer agent succeeded")
	} else if !strings.Contains(err.Error(), "newer agent") {
		t.Errorf("error = %v, want one about a newer agent", err)
	}
}
