package registry

// Resolve picks among the package's versions, as its registry lists them,
// the newest that fits constraint (every release, without one) and is not
// yanked: the version an install of that range would pick, before the
// installing server's own check that it can run it (protocol and
// min_relay_version). ENotFound when none fits.
func (p *Package) Resolve(constraint string) (string, error) {
	versions := make([]candidate, len(p.Versions))
	for i, v := range p.Versions {
		versions[i] = candidate{Version: v.Version, Yanked: v.Yanked != nil}
	}
	c, err := pickVersion(p.Name, versions, constraint, func(*candidate) error { return nil })
	if err != nil {
		return "", err
	}
	return c.Version, nil
}
