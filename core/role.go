package core

// Role is what an API key may do. Roles are ordered: each one may do
// everything the one below it may.
//
//	viewer     reads
//	developer  also previews and executes actions
//	admin      also manages keys, connections and installations
type Role string

const (
	RoleViewer    Role = "viewer"
	RoleDeveloper Role = "developer"
	RoleAdmin     Role = "admin"
)

// Roles lists every role from least to most privileged.
var Roles = []Role{RoleViewer, RoleDeveloper, RoleAdmin}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleDeveloper:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a key with role r may do what needs role min.
// An unknown role allows nothing.
func (r Role) Allows(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

// ParseRole returns the role named s, or an EInvalid error.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", Errorf(EInvalid, "role must be one of viewer, developer, admin; got %q", s)
	}
	return r, nil
}
