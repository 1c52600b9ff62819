package marketplace

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	mmsemver "github.com/Masterminds/semver/v3"
	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

// Finding templates. Every template has one listing (marketplace_listings,
// migration 0012), written in the transaction that publishes one of its
// versions, with the words of its newest version, and indexed for full
// text: SQLite's FTS5 (porter stems) or PostgreSQL's tsvector (english).
// Which version is the latest, and what it may do, is read from the
// registry's versions as a page is read, so that a yank shows at once.
// Listings are not a tenant's: any API key reads them all.

// Sort orders of a search.
const (
	SortRelevance = "relevance" // the best match first; the default with words to find
	SortName      = "name"      // the default without
	SortInstalls  = "installs"  // the most installed first
	SortUpdated   = "updated"   // the latest published first
)

// SearchQuery is a search of the listings. Every filter is optional.
type SearchQuery struct {
	// Q is words to find in a template's name, title, summary, categories
	// and readme: each word, or a word it begins, must be there.
	Q         string
	Category  string
	Publisher string
	Sort      string
	// Cursor is the NextCursor of the page before, for the same query.
	Cursor string
	Limit  int // 1 to core.MaxPageLimit; 0 is core.DefaultPageLimit
}

// Listing is a template as search shows it.
type Listing struct {
	Name       string   `json:"name"`
	Publisher  string   `json:"publisher"`
	Title      string   `json:"title"`
	Summary    string   `json:"summary"`
	Categories []string `json:"categories"`
	Icon       string   `json:"icon,omitempty"` // a file in the template's package
	// Latest is the newest release not yanked, which an install with no
	// range picks; empty when every release is yanked.
	Latest    string    `json:"latest,omitempty"`
	Installs  int64     `json:"installs"`
	UpdatedAt time.Time `json:"updated_at"` // when a version was last published
}

// ListingDetail is a template's own page: its listing, its readme, every
// version, and what installing its latest version allows.
type ListingDetail struct {
	Listing
	Readme   string           `json:"readme,omitempty"`
	Versions []ListingVersion `json:"versions"`
	// PermissionSummary is the latest version's (template.Summary), as
	// kept at publish; PermissionDigest its SHA-256, which an install
	// names to consent to it.
	PermissionSummary json.RawMessage `json:"permission_summary,omitempty"`
	PermissionDigest  string          `json:"permission_digest,omitempty"`
	// Price is the template's price plan in effect, and the next one
	// when its publisher has announced it (docs/billing.md).
	Price *billing.Price `json:"price,omitempty"`
}

// ListingVersion is a version in a listing, newest first.
type ListingVersion struct {
	Version     string         `json:"version"`
	PublishedAt time.Time      `json:"published_at"`
	Yanked      *registry.Yank `json:"yanked,omitempty"`
	Changelog   string         `json:"changelog,omitempty"`
}

// SearchPage is a page of listings; NextCursor is empty on the last.
type SearchPage struct {
	Data []*Listing `json:"data"`
	// Sort is the order the page is in: the one asked, but installs for
	// a search by relevance whose words match more than MaxRanked
	// listings (see Search).
	Sort       string `json:"sort"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// MaxRanked is how many matches a search by relevance ranks at most.
// Ranking costs a few µs a match (FTS5's bm25, PostgreSQL's ts_rank),
// and every match is ranked before the best are known: 1,000 keep a page
// within a few ms, 10,000 took 30 ms and more (docs/PERFORMANCE.md).
const MaxRanked = 1000

// maxQueryLength and maxQueryWords bound what a search looks for.
const (
	maxQueryLength = 200
	maxQueryWords  = 12
)

// nameRE is a category's or a publisher's name.
var nameRE = regexp.MustCompile(`^[a-z](?:[a-z0-9]|-[a-z0-9]){0,38}$`)

// Search lists the listings that q's words match, of a category or a
// publisher, in the order asked, a page at a time. A page is two queries,
// whatever its size: the listings, and their versions; and before them,
// for a search with words by relevance (its first page) or by installs,
// a count of its matches that stops past MaxRanked.
//
// A search by relevance that matches more than MaxRanked listings is
// broad: it is not ranked, but listed by installs (then name), which an
// index gives without reading every match. Its cursors say so, and its
// later pages keep that order. EInvalid for a bad query, sort, limit or
// cursor, or a cursor of another query.
func (s *Service) Search(ctx context.Context, q SearchQuery) (*SearchPage, error) {
	plan, err := s.planSearch(q)
	if err != nil {
		return nil, err
	}
	if plan.needsCount() {
		var n int
		query, args := plan.countSQL(s.maxRanked + 1)
		if err := s.cfg.DB.DB().GetContext(ctx, &n, s.cfg.DB.DB().Rebind(query), args...); err != nil {
			return nil, fmt.Errorf("marketplace: search: count: %w", err)
		}
		if n > s.maxRanked {
			plan.setBroad()
		}
	}
	var rows []listingRow
	query, args := plan.sql()
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.cfg.DB.DB().Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("marketplace: search: %w", err)
	}
	page := &SearchPage{Data: make([]*Listing, 0, len(rows)), Sort: plan.order}
	if len(rows) > plan.limit {
		rows = rows[:plan.limit]
		page.NextCursor = plan.cursorAfter(rows[len(rows)-1])
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Name
	}
	releases, err := s.cfg.Registry.ListTemplateReleases(ctx, names)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		l := r.listing()
		if rel := releases[r.Name]; rel != nil {
			l.Latest = rel.Latest
		}
		page.Data = append(page.Data, l)
	}
	return page, nil
}

// Listing is one template's page; EInvalid for a name that is not
// publisher/name, ENotFound when no template has it.
func (s *Service) Listing(ctx context.Context, name string) (*ListingDetail, error) {
	if err := relaypkg.CheckName(name); err != nil {
		return nil, err
	}
	var row struct {
		listingRow
		Readme string `db:"readme"`
	}
	err := s.cfg.DB.DB().GetContext(ctx, &row, s.cfg.DB.DB().Rebind(`SELECT `+listingColumns+`, l.readme
		FROM marketplace_listings l LEFT JOIN marketplace_template_stats st ON st.template = l.name WHERE l.name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no template %q in this marketplace", name)
	}
	if err != nil {
		return nil, fmt.Errorf("marketplace: listing %s: %w", name, err)
	}
	releases, err := s.cfg.Registry.ListTemplateReleases(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	d := &ListingDetail{Listing: *row.listing(), Readme: row.Readme, Versions: []ListingVersion{}}
	if s.cfg.Prices != nil {
		if d.Price, err = s.cfg.Prices.Price(ctx, name); err != nil {
			return nil, err
		}
	}
	rel := releases[name]
	if rel == nil {
		return d, nil
	}
	d.Latest = rel.Latest
	for _, v := range rel.Versions {
		var doc struct {
			Changelog string `json:"changelog"`
		}
		json.Unmarshal(v.Doc, &doc) // checked at publish
		d.Versions = append(d.Versions, ListingVersion{Version: v.Version, PublishedAt: v.PublishedAt, Yanked: v.Yanked, Changelog: doc.Changelog})
		if v.Version == rel.Latest {
			d.PermissionSummary = json.RawMessage(v.Summary)
			sum := sha256.Sum256(v.Summary)
			d.PermissionDigest = hex.EncodeToString(sum[:])
		}
	}
	return d, nil
}

// putListing writes the listing of a template version being published,
// in its transaction: a template's first version makes it; a newer one
// (by semver) gives it its words; any other only marks it updated.
func (s *Service) putListing(ctx context.Context, tx *sqlx.Tx, t *template.Template) error {
	now := s.now().Truncate(time.Microsecond)
	var listed []string
	if err := tx.SelectContext(ctx, &listed, tx.Rebind(`SELECT version FROM marketplace_listings WHERE name = ?`), t.Name); err != nil {
		return fmt.Errorf("marketplace: listing of %s: %w", t.Name, err)
	}
	if len(listed) > 0 && !newer(t.Version, listed[0]) {
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE marketplace_listings SET updated_at = ? WHERE name = ?`), now, t.Name)
		return err
	}
	publisher, _, _ := strings.Cut(t.Name, "/")
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO marketplace_listings (name, publisher, title, summary, categories, icon, readme, version, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET title = excluded.title, summary = excluded.summary,
		categories = excluded.categories, icon = excluded.icon, readme = excluded.readme, version = excluded.version, updated_at = excluded.updated_at`),
		t.Name, publisher, t.Title, t.Summary, strings.Join(t.Categories, " "), t.Icon, t.Readme, t.Version, now)
	if err != nil {
		return fmt.Errorf("marketplace: write listing of %s: %w", t.Name, err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM marketplace_listing_categories WHERE name = ?`), t.Name); err != nil {
		return fmt.Errorf("marketplace: categories of %s: %w", t.Name, err)
	}
	for _, c := range t.Categories {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO marketplace_listing_categories (category, name) VALUES (?, ?)`), c, t.Name); err != nil {
			return fmt.Errorf("marketplace: categories of %s: %w", t.Name, err)
		}
	}
	return nil
}

// newer reports whether version a is newer than b, by semver.
func newer(a, b string) bool {
	va, erra := mmsemver.StrictNewVersion(a)
	vb, errb := mmsemver.StrictNewVersion(b)
	if erra != nil || errb != nil {
		return erra == nil // one that parses beats one that does not
	}
	return va.GreaterThan(vb)
}

const listingColumns = `l.name, l.publisher, l.title, l.summary, l.categories, l.icon, l.updated_at, COALESCE(st.installs, 0) AS installs`

// pageColumns are a search's, whose install counts are read apart.
const pageColumns = `l.name, l.publisher, l.title, l.summary, l.categories, l.icon, l.updated_at`

type listingRow struct {
	Name       string    `db:"name"`
	Publisher  string    `db:"publisher"`
	Title      string    `db:"title"`
	Summary    string    `db:"summary"`
	Categories string    `db:"categories"`
	Icon       string    `db:"icon"`
	UpdatedAt  time.Time `db:"updated_at"`
	Installs   int64     `db:"installs"`
	Rank       float64   `db:"rank"`
}

func (r *listingRow) listing() *Listing {
	return &Listing{Name: r.Name, Publisher: r.Publisher, Title: r.Title, Summary: r.Summary,
		Categories: append([]string{}, strings.Fields(r.Categories)...), Icon: r.Icon, Installs: r.Installs, UpdatedAt: r.UpdatedAt.UTC()}
}

// searchPlan is a checked query: its words, its order, and where the
// page starts.
type searchPlan struct {
	dialect             string
	words               []string
	category, publisher string
	sort                string // as asked
	// order is the page's: sort, or installs for a broad search by
	// relevance.
	order string
	// broad: the words match more than MaxRanked listings.
	broad       bool
	limit       int
	fingerprint string
	after       *searchCursor
}

// searchCursor is where a page ends: the last listing's name and its sort
// key, with the fingerprint of the query it belongs to, and the order
// used when it is not the one asked. It goes out as base64url JSON,
// which a caller should not read.
type searchCursor struct {
	Query string `json:"q"`
	Order string `json:"o,omitempty"`
	Name  string `json:"n"`
	Key   string `json:"k,omitempty"`
}

// needsCount reports whether the page's plan depends on how many
// listings the words match: a search by relevance's first page (later
// pages keep the order their cursor names), and on SQLite the installs
// order, which is read two ways.
func (p *searchPlan) needsCount() bool {
	if len(p.words) == 0 {
		return false
	}
	switch p.sort {
	case SortRelevance:
		return p.after == nil
	case SortInstalls:
		return p.dialect != "postgres"
	}
	return false
}

// setBroad marks the words as matching more than MaxRanked listings: a
// search by relevance is listed by installs instead.
func (p *searchPlan) setBroad() {
	p.broad = true
	if p.sort == SortRelevance {
		p.order = SortInstalls
	}
}

func (s *Service) planSearch(q SearchQuery) (*searchPlan, error) {
	p := &searchPlan{dialect: s.cfg.DB.Dialect(), category: q.Category, publisher: q.Publisher, sort: q.Sort, limit: q.Limit}
	if len(q.Q) > maxQueryLength {
		return nil, core.Errorf(core.EInvalid, "q: at most %d bytes", maxQueryLength)
	}
	p.words = queryWords(q.Q)
	if len(p.words) > maxQueryWords {
		return nil, core.Errorf(core.EInvalid, "q: at most %d words", maxQueryWords)
	}
	if p.category != "" && !nameRE.MatchString(p.category) {
		return nil, core.Errorf(core.EInvalid, "category %q: a category is lower-case letters, digits and single hyphens, starting with a letter", p.category)
	}
	if p.publisher != "" && !nameRE.MatchString(p.publisher) {
		return nil, core.Errorf(core.EInvalid, "publisher %q: a publisher is lower-case letters, digits and single hyphens, starting with a letter", p.publisher)
	}
	switch p.sort {
	case "":
		p.sort = SortName
		if len(p.words) > 0 {
			p.sort = SortRelevance
		}
	case SortRelevance:
		if len(p.words) == 0 {
			return nil, core.Errorf(core.EInvalid, "sort relevance needs words to find (q)")
		}
	case SortName, SortInstalls, SortUpdated:
	default:
		return nil, core.Errorf(core.EInvalid, "sort %q: want relevance, name, installs or updated", p.sort)
	}
	switch {
	case p.limit == 0:
		p.limit = core.DefaultPageLimit
	case p.limit < 0 || p.limit > core.MaxPageLimit:
		return nil, core.Errorf(core.EInvalid, "limit must be 1 to %d", core.MaxPageLimit)
	}
	sum := sha256.Sum256([]byte(strings.Join(append([]string{p.sort, p.category, p.publisher}, p.words...), "\x00")))
	p.fingerprint = hex.EncodeToString(sum[:8])
	p.order = p.sort
	if q.Cursor != "" {
		c, err := p.readCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		p.after = c
	}
	return p, nil
}

// queryWords are q's words, lower-cased: runs of letters and digits.
// Anything else separates them, so nothing of q reaches the full-text
// query syntax but words.
func queryWords(q string) []string {
	return strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func (p *searchPlan) readCursor(text string) (*searchCursor, error) {
	bad := core.Errorf(core.EInvalid, "cursor %q is not one this search gave", text)
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, bad
	}
	var c searchCursor
	if err := json.Unmarshal(raw, &c); err != nil || c.Name == "" {
		return nil, bad
	}
	if c.Query != p.fingerprint {
		return nil, core.Errorf(core.EInvalid, "cursor %q is of another search: keep q, category, publisher and sort as they were", text)
	}
	switch {
	case c.Order == "":
	case c.Order == SortInstalls && p.sort == SortRelevance:
		p.setBroad()
	default:
		return nil, bad
	}
	if _, err := p.cursorKey(&c); err != nil {
		return nil, bad
	}
	return &c, nil
}

// cursorKey is the cursor's sort key as a query argument.
func (p *searchPlan) cursorKey(c *searchCursor) (any, error) {
	switch p.order {
	case SortInstalls:
		return strconv.ParseInt(c.Key, 10, 64)
	case SortUpdated:
		return time.Parse(time.RFC3339Nano, c.Key)
	case SortRelevance:
		return strconv.ParseFloat(c.Key, 64)
	}
	return nil, nil
}

func (p *searchPlan) cursorAfter(r listingRow) string {
	c := searchCursor{Query: p.fingerprint, Name: r.Name}
	if p.order != p.sort {
		c.Order = p.order
	}
	switch p.order {
	case SortInstalls:
		c.Key = strconv.FormatInt(r.Installs, 10)
	case SortUpdated:
		c.Key = r.UpdatedAt.UTC().Format(time.RFC3339Nano)
	case SortRelevance:
		c.Key = strconv.FormatFloat(r.Rank, 'g', -1, 64)
	}
	raw, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// sql is the page's query (with ? placeholders) and its arguments: one
// more row than the page holds, to know whether another page follows.
// Without words, each order walks an index from the cursor on; with
// words, by relevance, every match is ranked, then sorted; in another
// order, the matches are sorted, but for a broad search by installs on
// SQLite (PostgreSQL's planner finds that plan itself), which walks the
// installs index and checks each listing against its matches, gathered
// once. Install counts are looked up for the page's rows only, but to
// sort by them.
func (p *searchPlan) sql() (string, []any) {
	var args []any
	var where []string
	var key any
	if p.after != nil {
		key, _ = p.cursorKey(p.after) // checked by readCursor
	}
	// inner orders the page's query, order the page.
	cols, from, rank, inner, order := pageColumns, "marketplace_listings l", "0.0", "", ""
	switch p.order {
	case SortName:
		inner, order = "l.name", "name"
		if p.after != nil {
			where, args = append(where, "l.name > ?"), append(args, p.after.Name)
		}
	case SortUpdated:
		inner, order = "l.updated_at DESC, l.name", "updated_at DESC, name"
		if p.after != nil {
			where, args = append(where, "l.updated_at <= ? AND (l.updated_at < ? OR l.name > ?)"), append(args, key, key, p.after.Name)
		}
	case SortInstalls:
		// Every listing has its row of counts, and their index is in
		// this order.
		cols += ", st.installs AS installs"
		from = "marketplace_template_stats st JOIN marketplace_listings l ON l.name = st.template"
		inner, order = "st.installs DESC, st.template", "installs DESC, name"
		if p.after != nil {
			where, args = append(where, "st.installs <= ? AND (st.installs < ? OR st.template > ?)"), append(args, key, key, p.after.Name)
		}
	case SortRelevance:
		inner, order = "r.rank DESC, r.name", "rank DESC, name"
	}
	if len(p.words) > 0 {
		match := p.textQuery()
		switch {
		case p.dialect == "postgres":
			where = append(where, "l.search @@ to_tsquery('english', ?)")
			args = append(args, match)
			if p.order == SortRelevance {
				rank = "ts_rank(l.search, to_tsquery('english', ?))"
				args = append([]any{match}, args...)
			}
		case p.order == SortInstalls && p.broad:
			// CROSS JOIN keeps SQLite to the installs index, and + to
			// the matches as a set, not as rowids to look up.
			from = "marketplace_template_stats st CROSS JOIN marketplace_listings l ON l.name = st.template"
			where = append(where, "+l.id IN (SELECT rowid FROM marketplace_listings_fts WHERE marketplace_listings_fts MATCH ?)")
			args = append(args, match)
		default:
			from = "marketplace_listings_fts JOIN " + from + " ON l.id = marketplace_listings_fts.rowid"
			if p.order == SortInstalls {
				from = "marketplace_listings_fts JOIN marketplace_listings l ON l.id = marketplace_listings_fts.rowid JOIN marketplace_template_stats st ON st.template = l.name"
			}
			if p.order == SortRelevance {
				// bm25 is lower for a better match; the name and the
				// title weigh most, the readme least.
				rank = "-bm25(marketplace_listings_fts, 10.0, 10.0, 4.0, 4.0, 1.0)"
			}
			where = append(where, "marketplace_listings_fts MATCH ?")
			args = append(args, match)
		}
	}
	fw, fa := p.filters()
	where, args = append(where, fw...), append(args, fa...)
	page := `SELECT ` + cols + `, ` + rank + ` AS rank FROM ` + from
	if len(where) > 0 {
		page += ` WHERE ` + strings.Join(where, " AND ")
	}
	if p.order == SortRelevance {
		// A row's rank is known once it is read: the cursor applies to
		// the ranked rows.
		page = `SELECT * FROM (` + page + `) r`
		if p.after != nil {
			if p.dialect == "postgres" {
				// ts_rank is a real; the cursor's rank is compared as one.
				page += ` WHERE (r.rank < CAST(? AS REAL) OR r.rank = CAST(? AS REAL) AND r.name > ?)`
			} else {
				page += ` WHERE (r.rank < ? OR r.rank = ? AND r.name > ?)`
			}
			args = append(args, key, key, p.after.Name)
		}
	}
	page += ` ORDER BY ` + inner + ` LIMIT ?`
	args = append(args, p.limit+1)
	if p.order == SortInstalls {
		return page, args
	}
	return `SELECT p.*, COALESCE((SELECT installs FROM marketplace_template_stats st WHERE st.template = p.name), 0) AS installs
		FROM (` + page + `) p ORDER BY ` + order, args
}

// countSQL counts the listings that the words and filters match, up to
// limit: the full-text index stops there, and nothing is ranked.
func (p *searchPlan) countSQL(limit int) (string, []any) {
	from, where := "marketplace_listings l", []string{"l.search @@ to_tsquery('english', ?)"}
	if p.dialect != "postgres" {
		from = "marketplace_listings_fts JOIN marketplace_listings l ON l.id = marketplace_listings_fts.rowid"
		where = []string{"marketplace_listings_fts MATCH ?"}
	}
	args := []any{p.textQuery()}
	fw, fa := p.filters()
	where, args = append(where, fw...), append(args, fa...)
	return `SELECT count(*) FROM (SELECT 1 FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") + ` LIMIT ?) m`, append(args, limit)
}

// textQuery is the words as the full-text query that finds each word, or
// a word it begins: a tsquery on PostgreSQL, an FTS5 query on SQLite.
func (p *searchPlan) textQuery() string {
	terms := make([]string, len(p.words))
	for i, w := range p.words {
		if p.dialect == "postgres" {
			terms[i] = w + ":*"
		} else {
			terms[i] = `"` + w + `"*`
		}
	}
	if p.dialect == "postgres" {
		return strings.Join(terms, " & ")
	}
	return strings.Join(terms, " ")
}

// filters are the category's and the publisher's conditions on the
// listing l, and their arguments.
func (p *searchPlan) filters() ([]string, []any) {
	var where []string
	var args []any
	if p.category != "" {
		where = append(where, "EXISTS (SELECT 1 FROM marketplace_listing_categories c WHERE c.category = ? AND c.name = l.name)")
		args = append(args, p.category)
	}
	if p.publisher != "" {
		where = append(where, "l.publisher = ?")
		args = append(args, p.publisher)
	}
	return where, args
}
