package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// The marketplace: templates found, installed with consent to their
// permission summary, upgraded and rolled back.

// Listing is a template as the marketplace lists it.
type Listing struct {
	Name       string          `json:"name"`
	Publisher  string          `json:"publisher"`
	Title      string          `json:"title"`
	Summary    string          `json:"summary"`
	Categories []string        `json:"categories"`
	Icon       string          `json:"icon,omitempty"`
	Latest     json.RawMessage `json:"latest,omitempty"`
	Installs   int64           `json:"installs"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// ListingPage is a page of listings in the order Sort says; NextCursor
// is empty on the last.
type ListingPage struct {
	Data       []Listing `json:"data"`
	Sort       string    `json:"sort"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// TemplateQuery searches the marketplace: by words, category, publisher;
// Sort is relevance, name, installs or updated.
type TemplateQuery struct {
	Query, Category, Publisher, Sort string
	Limit                            int
	Cursor                           string
}

// ListingDetail is a listing with its readme, versions, the newest
// version's permission summary, and its price.
type ListingDetail struct {
	Listing
	Readme            string          `json:"readme,omitempty"`
	Versions          json.RawMessage `json:"versions"`
	PermissionSummary json.RawMessage `json:"permission_summary,omitempty"`
	PermissionDigest  string          `json:"permission_digest,omitempty"`
	Price             *Price          `json:"price,omitempty"`
}

// InstallPlan is what installing a template version allows: the summary
// to show, and the digest that accepts it.
type InstallPlan struct {
	Template          string          `json:"template"`
	Version           string          `json:"version"`
	PermissionSummary json.RawMessage `json:"permission_summary"`
	PermissionDigest  string          `json:"permission_digest"`
}

// TemplateConnection fills in one of a template's connections.
type TemplateConnection struct {
	Config  map[string]any    `json:"config,omitempty"`
	Secrets map[string]string `json:"secrets,omitempty"`
}

// InstallRequest installs a template. Accept is the permission digest of
// the plan the admin was shown.
type InstallRequest struct {
	Template    string                        `json:"template"`
	Version     string                        `json:"version,omitempty"`
	Name        string                        `json:"name,omitempty"`
	Connections map[string]TemplateConnection `json:"connections,omitempty"`
	Accept      string                        `json:"accept"`
	Check       *bool                         `json:"check,omitempty"`
}

// TemplateUpgradeRequest previews or makes an upgrade of an installation;
// DryRunRuns (preview only) replays that many of its recent runs' params
// against the new presets.
type TemplateUpgradeRequest struct {
	Version     string                        `json:"version,omitempty"`
	Accept      string                        `json:"accept,omitempty"`
	Connections map[string]TemplateConnection `json:"connections,omitempty"`
	DryRunRuns  int                           `json:"dry_run_runs,omitempty"`
	Check       *bool                         `json:"check,omitempty"`
}

// TemplateInstallation is a template installed in the workspace.
type TemplateInstallation struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Template     string          `json:"template"`
	Version      string          `json:"version"`
	VersionRange string          `json:"version_range,omitempty"`
	Lock         json.RawMessage `json:"lock"`
	LockSHA256   string          `json:"lock_sha256"`
	RollbackTo   string          `json:"rollback_to,omitempty"`
	Presets      []string        `json:"presets"`
	InstalledAt  time.Time       `json:"installed_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	CreatedBy    string          `json:"created_by,omitempty"`
}

// UpgradePreview is what upgrading an installation would change, the
// summary and digest to accept, and the dry run's report.
type UpgradePreview struct {
	From              string          `json:"from"`
	To                string          `json:"to"`
	PermissionSummary json.RawMessage `json:"permission_summary"`
	PermissionDigest  string          `json:"permission_digest"`
	Diff              json.RawMessage `json:"diff"`
	DryRun            json.RawMessage `json:"dry_run"`
}

// SearchTemplates searches the marketplace (GET
// /v1/marketplace/templates).
func (c *Client) SearchTemplates(ctx context.Context, tq TemplateQuery) (*ListingPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"q": tq.Query, "category": tq.Category, "publisher": tq.Publisher, "sort": tq.Sort} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var p ListingPage
	return &p, c.do(ctx, http.MethodGet, "/v1/marketplace/templates"+pageQuery(q, tq.Limit, tq.Cursor), nil, &p)
}

// Template returns a template's listing, template being publisher/name
// (GET /v1/marketplace/templates/{publisher}/{name}).
func (c *Client) Template(ctx context.Context, template string) (*ListingDetail, error) {
	var d ListingDetail
	return &d, c.do(ctx, http.MethodGet, "/v1/marketplace/templates/"+pkgPath(template), nil, &d)
}

// PlanTemplateInstall says what installing a template version (a range;
// "" for the newest) would allow (GET
// /v1/marketplace/templates/{publisher}/{name}/plan).
func (c *Client) PlanTemplateInstall(ctx context.Context, template, version string) (*InstallPlan, error) {
	q := url.Values{}
	if version != "" {
		q.Set("version", version)
	}
	var p InstallPlan
	return &p, c.do(ctx, http.MethodGet, "/v1/marketplace/templates/"+pkgPath(template)+"/plan"+pageQuery(q, 0, ""), nil, &p)
}

// InstallTemplate installs a template (POST /v1/installations, admin).
func (c *Client) InstallTemplate(ctx context.Context, req InstallRequest) (*TemplateInstallation, error) {
	var in TemplateInstallation
	return &in, c.do(ctx, http.MethodPost, "/v1/installations", req, &in)
}

// ListInstallations returns the workspace's template installations (GET
// /v1/installations).
func (c *Client) ListInstallations(ctx context.Context) ([]TemplateInstallation, error) {
	var out struct {
		Data []TemplateInstallation `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/installations", nil, &out)
}

// TemplateInstallation returns an installation by id or name (GET
// /v1/installations/{id}).
func (c *Client) TemplateInstallation(ctx context.Context, idOrName string) (*TemplateInstallation, error) {
	var in TemplateInstallation
	return &in, c.do(ctx, http.MethodGet, "/v1/installations/"+url.PathEscape(idOrName), nil, &in)
}

// UninstallTemplate removes an installation; with removeConnections, the
// connections it made go too (DELETE /v1/installations/{id}, admin).
func (c *Client) UninstallTemplate(ctx context.Context, idOrName string, removeConnections bool) error {
	path := "/v1/installations/" + url.PathEscape(idOrName)
	if removeConnections {
		path += "?connections=delete"
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// PreviewInstallationUpgrade says what an upgrade would change, with a
// dry run (POST /v1/installations/{id}/upgrade/preview, admin).
func (c *Client) PreviewInstallationUpgrade(ctx context.Context, idOrName string, req TemplateUpgradeRequest) (*UpgradePreview, error) {
	var p UpgradePreview
	return &p, c.do(ctx, http.MethodPost, "/v1/installations/"+url.PathEscape(idOrName)+"/upgrade/preview", req, &p)
}

// UpgradeInstallation upgrades an installation to the previewed version
// (POST /v1/installations/{id}/upgrade, admin).
func (c *Client) UpgradeInstallation(ctx context.Context, idOrName string, req TemplateUpgradeRequest) (*TemplateInstallation, error) {
	var in TemplateInstallation
	return &in, c.do(ctx, http.MethodPost, "/v1/installations/"+url.PathEscape(idOrName)+"/upgrade", req, &in)
}

// RollbackInstallation returns an installation to its lock before the
// last upgrade (POST /v1/installations/{id}/rollback, admin).
func (c *Client) RollbackInstallation(ctx context.Context, idOrName string) (*TemplateInstallation, error) {
	var in TemplateInstallation
	return &in, c.do(ctx, http.MethodPost, "/v1/installations/"+url.PathEscape(idOrName)+"/rollback", nil, &in)
}
