// Package store is the agent's record on disk: its node identity, the last
// assignment generation it applied, and one record per replica it runs. With
// it an agent that restarts can re-adopt its processes (by PID and start
// time) instead of starting them again, and keep its identity with the
// servers.
//
// The record is one bbolt file, opened by one agent at a time; it holds the
// node secret, so the file is kept at mode 0600. Every write is synced to
// disk before it returns.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned by GetReplica for an unknown replica ID.
var ErrNotFound = errors.New("not found")

// ErrLocked is returned by Open when another process holds the file open,
// which is most likely another agent using the same data directory.
var ErrLocked = errors.New("locked by another process (is another drover agent using this data directory?)")

// openTimeout is how long Open waits for the file lock.
const openTimeout = time.Second

// schemaVersion is the layout of the buckets below; a later layout migrates
// from older ones in Open.
const schemaVersion = 1

var (
	metaBucket     = []byte("meta")
	replicasBucket = []byte("replicas")

	keySchema     = []byte("schema")
	keyNodeID     = []byte("node_id")
	keySecret     = []byte("secret")
	keyGeneration = []byte("generation")
)

// Store is the agent's record on disk. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Identity is who this node is to the servers: the ID they gave it and the
// secret it proves itself with when it reconnects.
type Identity struct {
	NodeID string
	Secret string
}

// Replica is the agent's record of one replica it runs.
type Replica struct {
	// ID is the replica's ID, given by the server.
	ID string `json:"id"`
	// PID is the process ID of the replica's process (its process group
	// leader), or 0 when it is not running.
	PID int `json:"pid,omitempty"`
	// StartTime is the process's start time as the kernel gives it (field 22
	// of /proc/PID/stat), which tells a re-used PID from the same process.
	StartTime uint64 `json:"start_time,omitempty"`
	// Restarts counts the restarts of the replica on this node.
	Restarts int `json:"restarts,omitempty"`
	// Ports maps the replica's port names to the host ports it was given.
	Ports map[string]int `json:"ports,omitempty"`
	// Spec is the replica's assignment as the agent received it; the store
	// does not look inside it. It must be valid JSON, and is stored compacted.
	Spec json.RawMessage `json:"spec,omitempty"`
	// FlagsToken is the replica's secret for reading its flags
	// (DROVER_FLAGS_TOKEN): its process keeps it across agent restarts.
	FlagsToken string `json:"flags_token,omitempty"`
	// State is the replica's last observed state ("running", "stopped", ...).
	State string `json:"state,omitempty"`
	// UpdatedAt is when the record last changed.
	UpdatedAt time.Time `json:"updated_at"`
}

// Open opens the record at path, creating it and its directory if needed.
// It waits at most a second for the file lock, and returns an error wrapping
// ErrLocked if another process holds it.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open agent store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open agent store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open agent store %s: %w", path, err)
	}
	// bbolt keeps the mode of a file that already exists; the secret is in it.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("open agent store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(replicasBucket); err != nil {
			return err
		}
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("corrupt schema version %x", v)
			}
			if got := binary.BigEndian.Uint64(v); got > schemaVersion {
				return fmt.Errorf("written by a newer agent (schema %d, this agent knows %d)", got, schemaVersion)
			}
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open agent store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the record and releases its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close agent store %s: %w", s.db.Path(), err)
	}
	return nil
}

// Identity returns the node's identity, or a zero Identity if none was set.
func (s *Store) Identity() (Identity, error) {
	var id Identity
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		id.NodeID = string(meta.Get(keyNodeID))
		id.Secret = string(meta.Get(keySecret))
		return nil
	})
	return id, err
}

// SetIdentity records the node's identity, replacing any earlier one.
func (s *Store) SetIdentity(id Identity) error {
	if id.NodeID == "" {
		return errors.New("set node identity: empty node ID")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if err := meta.Put(keyNodeID, []byte(id.NodeID)); err != nil {
			return err
		}
		return meta.Put(keySecret, []byte(id.Secret))
	})
	if err != nil {
		return fmt.Errorf("set node identity: %w", err)
	}
	return nil
}

// Generation returns the generation of the last assignment applied, or 0.
func (s *Store) Generation() (uint64, error) {
	var gen uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(metaBucket).Get(keyGeneration)
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("corrupt generation %x", v)
		}
		gen = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return gen, nil
}

// SetGeneration records gen as the generation of the last assignment applied.
func (s *Store) SetGeneration(gen uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(keyGeneration, binary.BigEndian.AppendUint64(nil, gen))
	})
	if err != nil {
		return fmt.Errorf("set generation: %w", err)
	}
	return nil
}

// PutReplica creates or replaces the record of replica r.ID.
func (s *Store) PutReplica(r Replica) error {
	if r.ID == "" {
		return errors.New("put replica: empty ID")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put replica %s: %w", r.ID, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(replicasBucket).Put([]byte(r.ID), b)
	})
	if err != nil {
		return fmt.Errorf("put replica %s: %w", r.ID, err)
	}
	return nil
}

// GetReplica returns the record of replica id, or an error wrapping
// ErrNotFound.
func (s *Store) GetReplica(id string) (Replica, error) {
	var r Replica
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(replicasBucket).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		return Replica{}, fmt.Errorf("get replica %s: %w", id, err)
	}
	return r, nil
}

// DeleteReplica removes the record of replica id. Removing a record that does
// not exist is not an error.
func (s *Store) DeleteReplica(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(replicasBucket).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete replica %s: %w", id, err)
	}
	return nil
}

// ListReplicas returns every replica record, ordered by ID.
func (s *Store) ListReplicas() ([]Replica, error) {
	var rs []Replica
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(replicasBucket).ForEach(func(k, v []byte) error {
			var r Replica
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("replica %s: %w", k, err)
			}
			rs = append(rs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	return rs, nil
}
