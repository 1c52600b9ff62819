package marketplace

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/template"
)

// catalog publishes the notes connector and four templates of two
// publishers; beta's incident kit has two versions.
func (e *env) catalog() {
	e.t.Helper()
	e.publishNotes("1.0.0")
	for _, t := range []tpl{
		{name: "acme/order-alerts", version: "1.0.0", title: "Order alerts", summary: "Tell the team about every large order.",
			readme: "Posts a note for each order over a threshold.", categories: []string{"sales", "notifications"}},
		{name: "acme/standup", version: "0.3.0", title: "Daily standup", summary: "Collect what everyone did yesterday.",
			readme: "Keeps the minutes of a standup as a note.", categories: []string{"productivity"}},
		{name: "beta/incident-kit", version: "1.0.0", title: "Incident kit", summary: "Declare outages and resolve them.",
			readme: "Pages whoever is on call.", categories: []string{"devops", "notifications"}, changelog: "First release."},
		{name: "beta/ledger", version: "2.1.0", title: "Ledger", summary: "Book keeping for small teams.",
			readme: "Writes invoices and receipts into your ledger, and reconciles orders with payments.", categories: []string{"finance"}},
		{name: "beta/incident-kit", version: "1.1.0", title: "Incident kit", summary: "Declare outages, post updates and resolve them.",
			readme: "Pages whoever is on call, then keeps the status page current.", categories: []string{"devops", "notifications"},
			changelog: "Posts status updates."},
	} {
		e.publishTemplate(t)
	}
}

func names(t *testing.T, page *SearchPage, err error) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, l := range page.Data {
		out = append(out, l.Name)
	}
	return out
}

func TestSearch(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.catalog()
		ctx := context.Background()
		search := func(q SearchQuery) []string {
			t.Helper()
			page, err := e.market.Search(ctx, q)
			return names(t, page, err)
		}
		for _, c := range []struct {
			q    SearchQuery
			want []string
		}{
			{SearchQuery{}, []string{"acme/order-alerts", "acme/standup", "beta/incident-kit", "beta/ledger"}},
			// A word of the title, of the summary, of the readme only.
			{SearchQuery{Q: "standup"}, []string{"acme/standup"}},
			{SearchQuery{Q: "outages"}, []string{"beta/incident-kit"}},
			{SearchQuery{Q: "reconciles"}, []string{"beta/ledger"}},
			// Stems and word starts; every word must be there.
			{SearchQuery{Q: "outage"}, []string{"beta/incident-kit"}},
			{SearchQuery{Q: "invoic"}, []string{"beta/ledger"}},
			{SearchQuery{Q: "STATUS page"}, []string{"beta/incident-kit"}},
			{SearchQuery{Q: "status ledger"}, []string{}},
			// Names and categories are words too.
			{SearchQuery{Q: "acme", Sort: SortName}, []string{"acme/order-alerts", "acme/standup"}},
			{SearchQuery{Q: "finance"}, []string{"beta/ledger"}},
			// Punctuation is no query syntax.
			{SearchQuery{Q: `"ledger" OR (NEAR*`}, []string{}},
			{SearchQuery{Q: `ledger:* & !`}, []string{"beta/ledger"}},
			{SearchQuery{Q: "?!"}, []string{"acme/order-alerts", "acme/standup", "beta/incident-kit", "beta/ledger"}},
			// Filters, alone and with words.
			{SearchQuery{Category: "notifications"}, []string{"acme/order-alerts", "beta/incident-kit"}},
			{SearchQuery{Category: "nothing"}, []string{}},
			{SearchQuery{Publisher: "beta"}, []string{"beta/incident-kit", "beta/ledger"}},
			{SearchQuery{Q: "order", Publisher: "beta"}, []string{"beta/ledger"}},
			{SearchQuery{Q: "order", Category: "sales"}, []string{"acme/order-alerts"}},
			// Sorts: the last published first; installs, then name.
			{SearchQuery{Sort: SortUpdated}, []string{"beta/incident-kit", "beta/ledger", "acme/standup", "acme/order-alerts"}},
			{SearchQuery{Sort: SortName, Q: "order"}, []string{"acme/order-alerts", "beta/ledger"}},
		} {
			if got := search(c.q); !slices.Equal(got, c.want) {
				t.Errorf("%+v: %v, want %v", c.q, got, c.want)
			}
		}
		// Relevance: a title's word beats a readme's.
		if got := search(SearchQuery{Q: "order"}); !slices.Equal(got, []string{"acme/order-alerts", "beta/ledger"}) {
			t.Errorf("order, by relevance: %v", got)
		}
		if _, err := e.store.DB().ExecContext(ctx, e.store.DB().Rebind(`UPDATE marketplace_template_stats SET installs = ? WHERE template = ?`), 7, "beta/ledger"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.DB().ExecContext(ctx, e.store.DB().Rebind(`UPDATE marketplace_template_stats SET installs = ? WHERE template = ?`), 3, "acme/standup"); err != nil {
			t.Fatal(err)
		}
		if got, want := search(SearchQuery{Sort: SortInstalls}), []string{"beta/ledger", "acme/standup", "acme/order-alerts", "beta/incident-kit"}; !slices.Equal(got, want) {
			t.Errorf("by installs: %v, want %v", got, want)
		}
		page, err := e.market.Search(ctx, SearchQuery{Q: "ledger"})
		if err != nil || len(page.Data) != 1 {
			t.Fatalf("ledger: %v %v", page, err)
		}
		l := page.Data[0]
		if l.Publisher != "beta" || l.Title != "Ledger" || l.Latest != "2.1.0" || l.Installs != 7 || !slices.Equal(l.Categories, []string{"finance"}) || l.UpdatedAt.IsZero() {
			t.Errorf("ledger's listing: %+v", l)
		}
	})
}

// Every sort pages through every listing once, in its order, ties and
// all, at any page size.
func TestSearchPages(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.publishNotes("1.0.0")
		ctx := context.Background()
		var all []string
		for i := range 11 {
			name := fmt.Sprintf("acme/kit-%02d", i)
			all = append(all, name)
			// Same words in all: the same relevance for every one.
			e.publishTemplate(tpl{name: name, version: "1.0.0", title: "Kit", summary: "A kit of notes."})
			if i%3 == 0 {
				e.now = e.now.Add(-time.Second) // some published at one instant
			}
		}
		for i, name := range all {
			if _, err := e.store.DB().ExecContext(ctx, e.store.DB().Rebind(`UPDATE marketplace_template_stats SET installs = ? WHERE template = ?`), i%2, name); err != nil {
				t.Fatal(err)
			}
		}
		// Also with a search's words taken as broad (TestSearchBroad).
		for _, maxRanked := range []int{MaxRanked, 3} {
			e.market.maxRanked = maxRanked
			for _, q := range []SearchQuery{{}, {Sort: SortInstalls}, {Sort: SortUpdated}, {Q: "kit notes"}, {Q: "kit", Sort: SortInstalls}} {
				whole, err := e.market.Search(ctx, SearchQuery{Q: q.Q, Sort: q.Sort, Limit: 100})
				want := names(t, whole, err)
				if len(want) != len(all) || whole.NextCursor != "" {
					t.Fatalf("%+v in one page: %v, next %q", q, want, whole.NextCursor)
				}
				for _, size := range []int{1, 2, 4, 10} {
					q.Limit, q.Cursor = size, ""
					var got []string
					for pages := 0; ; pages++ {
						if pages > len(all) {
							t.Fatalf("%+v: no end", q)
						}
						page, err := e.market.Search(ctx, q)
						got = append(got, names(t, page, err)...)
						if page.NextCursor == "" {
							break
						}
						q.Cursor = page.NextCursor
					}
					if !slices.Equal(got, want) {
						t.Errorf("%+v by %d: %v, want %v", q, size, got, want)
					}
				}
			}
		}
	})
}

// A search by relevance whose words match more than maxRanked listings
// is listed by installs, then name, every page of it: its cursors keep
// that order even once it matches fewer. Every listing it gives has
// every word.
func TestSearchBroad(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.publishNotes("1.0.0")
		ctx := context.Background()
		var kits []string
		for i := range 9 {
			name := fmt.Sprintf("acme/kit-%02d", i)
			summary := "A kit of notes."
			if i%3 == 0 {
				summary = "A kit." // matches kit, not kit notes
			} else {
				kits = append(kits, name)
			}
			e.publishTemplate(tpl{name: name, version: "1.0.0", title: "Kit", summary: summary})
			if _, err := e.store.DB().ExecContext(ctx, e.store.DB().Rebind(`UPDATE marketplace_template_stats SET installs = ? WHERE template = ?`), i%4, name); err != nil {
				t.Fatal(err)
			}
		}
		e.publishTemplate(tpl{name: "acme/ledger", version: "1.0.0", title: "Ledger", summary: "Notes of what was paid."})
		e.market.maxRanked = 3
		slices.SortFunc(kits, func(a, b string) int { // by installs, then name
			ia, _ := strconv.Atoi(a[len(a)-2:])
			ib, _ := strconv.Atoi(b[len(b)-2:])
			return cmp.Or(cmp.Compare(ib%4, ia%4), cmp.Compare(a, b))
		})
		broad := SearchQuery{Q: "kit notes"}
		for _, size := range []int{1, 2, 4, 10} {
			q := broad
			q.Limit = size
			var got []string
			for pages := 0; ; pages++ {
				if pages > len(kits) {
					t.Fatalf("by %d: no end", size)
				}
				page, err := e.market.Search(ctx, q)
				got = append(got, names(t, page, err)...)
				if page.Sort != SortInstalls {
					t.Errorf("by %d, page %d: sort %q, want installs", size, pages, page.Sort)
				}
				if page.NextCursor == "" {
					break
				}
				q.Cursor = page.NextCursor
				e.market.maxRanked = 100 // the cursor keeps the order it began with
			}
			e.market.maxRanked = 3
			if !slices.Equal(got, kits) {
				t.Errorf("by %d: %v, want %v", size, got, kits)
			}
		}
		// As many as maxRanked: ranked.
		page, err := e.market.Search(ctx, SearchQuery{Q: "notes", Limit: 2})
		if err != nil || page.Sort != SortInstalls {
			t.Fatalf("notes: %+v %v", page, err)
		}
		page, err = e.market.Search(ctx, SearchQuery{Q: "ledger"})
		if got := names(t, page, err); page.Sort != SortRelevance || !slices.Equal(got, []string{"acme/ledger"}) {
			t.Errorf("ledger: %v by %s", got, page.Sort)
		}
		e.market.maxRanked = len(kits)
		page, err = e.market.Search(ctx, SearchQuery{Q: "kit notes", Limit: 2})
		if got := names(t, page, err); page.Sort != SortRelevance || len(got) != 2 || page.NextCursor == "" {
			t.Fatalf("kit notes, ranked: %v by %s", got, page.Sort)
		}
		// A ranked search's cursor is not a broad one's.
		e.market.maxRanked = 3
		page, err = e.market.Search(ctx, SearchQuery{Q: "kit notes", Limit: 2, Cursor: page.NextCursor})
		if err != nil || page.Sort != SortRelevance {
			t.Errorf("kit notes, ranked, page 2: %+v %v", page, err)
		}
	})
}

func TestSearchRefusesBadQueries(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.catalog()
		ctx := context.Background()
		page, err := e.market.Search(ctx, SearchQuery{Limit: 1})
		if err != nil || page.NextCursor == "" {
			t.Fatalf("%v %v", page, err)
		}
		long := make([]byte, maxQueryLength+1)
		for i := range long {
			long[i] = 'a'
		}
		for what, q := range map[string]SearchQuery{
			"an unknown sort":               {Sort: "price"},
			"relevance without words":       {Sort: SortRelevance},
			"a negative limit":              {Limit: -1},
			"a limit too large":             {Limit: core.MaxPageLimit + 1},
			"a bad category":                {Category: "Dev Ops"},
			"a bad publisher":               {Publisher: "acme/x"},
			"a long q":                      {Q: string(long)},
			"too many words":                {Q: "a b c d e f g h i j k l m"},
			"a cursor not base64":           {Cursor: "%%%"},
			"a cursor not JSON":             {Cursor: "bm90IGpzb24"},
			"a cursor of another sort":      {Cursor: page.NextCursor, Sort: SortUpdated},
			"a cursor of another publisher": {Cursor: page.NextCursor, Publisher: "acme"},
		} {
			if _, err := e.market.Search(ctx, q); core.ErrorCode(err) != core.EInvalid {
				t.Errorf("%s: %v, want %s", what, err, core.EInvalid)
			}
		}
	})
}

func TestListing(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.catalog()
		ctx := context.Background()
		l, err := e.market.Listing(ctx, "beta/incident-kit")
		if err != nil {
			t.Fatal(err)
		}
		if l.Latest != "1.1.0" || l.Summary != "Declare outages, post updates and resolve them." || l.Readme == "" ||
			!slices.Equal(l.Categories, []string{"devops", "notifications"}) || len(l.Versions) != 2 {
			t.Fatalf("listing: %+v", l)
		}
		if v := l.Versions[0]; v.Version != "1.1.0" || v.Changelog != "Posts status updates." || v.Yanked != nil || v.PublishedAt.IsZero() {
			t.Errorf("newest version: %+v", v)
		}
		if v := l.Versions[1]; v.Version != "1.0.0" || v.Changelog != "First release." {
			t.Errorf("older version: %+v", v)
		}
		var summary template.Summary
		if err := json.Unmarshal(l.PermissionSummary, &summary); err != nil {
			t.Fatal(err)
		}
		if summary.Template != "beta/incident-kit@1.1.0" || summary.Digest() != l.PermissionDigest ||
			!slices.Equal(summary.Egress, []string{"api.notes.example"}) || len(summary.Secrets) != 1 {
			t.Errorf("permission summary %s, digest %s", l.PermissionSummary, l.PermissionDigest)
		}

		// A yanked newest version is not the latest; its words stay the
		// newest version's, and it is listed with why.
		e.yank("beta/incident-kit", "1.1.0", "pages the wrong team")
		l, err = e.market.Listing(ctx, "beta/incident-kit")
		if err != nil {
			t.Fatal(err)
		}
		if l.Latest != "1.0.0" || l.Versions[0].Yanked == nil || l.Versions[0].Yanked.Reason != "pages the wrong team" {
			t.Errorf("after the yank: latest %q, versions %+v", l.Latest, l.Versions)
		}
		json.Unmarshal(l.PermissionSummary, &summary)
		if summary.Template != "beta/incident-kit@1.0.0" || summary.Digest() != l.PermissionDigest {
			t.Errorf("after the yank, the summary of %s", summary.Template)
		}
		page, err := e.market.Search(ctx, SearchQuery{Q: "incident"})
		if err != nil || len(page.Data) != 1 || page.Data[0].Latest != "1.0.0" {
			t.Errorf("search after the yank: %+v %v", page, err)
		}
		// Every version yanked: listed, with no latest and no summary.
		e.yank("beta/incident-kit", "1.0.0", "withdrawn")
		l, err = e.market.Listing(ctx, "beta/incident-kit")
		if err != nil || l.Latest != "" || l.PermissionSummary != nil || len(l.Versions) != 2 {
			t.Errorf("all yanked: %+v %v", l, err)
		}

		// An older version published after a newer one changes no words.
		e.publishTemplate(tpl{name: "beta/ledger", version: "2.0.1", title: "Old ledger", summary: "A fix for 2.0."})
		l, err = e.market.Listing(ctx, "beta/ledger")
		if err != nil || l.Title != "Ledger" || l.Latest != "2.1.0" || len(l.Versions) != 2 {
			t.Errorf("after 2.0.1: %+v %v", l, err)
		}
		// A newer one does.
		e.publishTemplate(tpl{name: "beta/ledger", version: "3.0.0", title: "Ledger Pro", summary: "Book keeping.", categories: []string{"accounting"}})
		page, err = e.market.Search(ctx, SearchQuery{Category: "finance"})
		if got := names(t, page, err); len(got) != 0 {
			t.Errorf("finance after 3.0.0: %v", got)
		}
		page, err = e.market.Search(ctx, SearchQuery{Q: "pro", Category: "accounting"})
		if got := names(t, page, err); !slices.Equal(got, []string{"beta/ledger"}) {
			t.Errorf("pro after 3.0.0: %v", got)
		}

		_, err = e.market.Listing(ctx, "beta/nothing")
		wantCode(t, err, core.ENotFound)
		_, err = e.market.Listing(ctx, "acme/notes") // a connector
		wantCode(t, err, core.ENotFound)
		_, err = e.market.Listing(ctx, "Beta/Ledger")
		wantCode(t, err, core.EInvalid)
	})
}
