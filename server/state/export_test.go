package state

// Clone returns a store holding a copy-on-write copy of s's state, for tests
// that start many times from one state.
func (s *Store) Clone() *Store {
	st := NewStore()
	st.replace(s.current().db.Snapshot())
	return st
}
