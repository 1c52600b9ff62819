package core

import (
	"testing"
	"time"
)

func TestIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := newIDAt(t0)
	for i := 1; i < 100; i++ {
		id := newIDAt(t0.Add(time.Duration(i) * time.Millisecond))
		if !ValidID(id) {
			t.Fatalf("newIDAt made invalid id %q", id)
		}
		if id <= prev {
			t.Fatalf("id %q made later sorts before %q", id, prev)
		}
		prev = id
	}
}

func TestValidID(t *testing.T) {
	for in, want := range map[string]bool{
		NewID():                       true,
		"":                            false,
		"01arz3ndektsv4rrffq69g5fav":  true,
		"01ARZ3NDEKTSV4RRFFQ69G5FAV":  false,
		"01arz3ndektsv4rrffq69g5fau":  false,
		"81arz3ndektsv4rrffq69g5fav":  false,
		"01arz3ndektsv4rrffq69g5fa":   false,
		"01arz3ndektsv4rrffq69g5fav0": false,
		"01arz3ndektsv4rrffq69g5fa_v": false,
	} {
		if got := ValidID(in); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		have, need Role
		want       bool
	}{
		{RoleViewer, RoleViewer, true},
		{RoleViewer, RoleDeveloper, false},
		{RoleViewer, RoleAdmin, false},
		{RoleDeveloper, RoleViewer, true},
		{RoleDeveloper, RoleDeveloper, true},
		{RoleDeveloper, RoleAdmin, false},
		{RoleAdmin, RoleAdmin, true},
		{Role("root"), RoleViewer, false},
		{Role(""), Role(""), false},
	}
	for _, tt := range tests {
		if got := tt.have.Allows(tt.need); got != tt.want {
			t.Errorf("%q.Allows(%q) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
}

func TestIDFloor(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	floor := IDFloor(t0)
	if !ValidID(floor) {
		t.Fatalf("IDFloor made invalid id %q", floor)
	}
	for range 100 {
		if at := newIDAt(t0); at < floor {
			t.Fatalf("an id made at t0 (%s) sorts before the floor %s", at, floor)
		}
		if before := newIDAt(t0.Add(-time.Millisecond)); before >= floor {
			t.Fatalf("an id made a millisecond before t0 (%s) sorts at or after the floor %s", before, floor)
		}
	}
	// Sub-millisecond parts do not move the floor; the ends clamp.
	if IDFloor(t0.Add(999*time.Microsecond)) != floor {
		t.Error("the floor moved within a millisecond")
	}
	if lo, hi := IDFloor(time.Unix(-5, 0)), IDFloor(time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)); !ValidID(lo) || !ValidID(hi) || lo != IDFloor(time.Unix(0, 0)) || hi <= floor {
		t.Errorf("clamped floors %q %q", lo, hi)
	}
}
