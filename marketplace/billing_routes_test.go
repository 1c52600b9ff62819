package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/httpapi/httpapitest"
)

// Billing's routes through the server, with each role and credential: a
// workspace's budgets and alert hook are its own, changed by its admins
// only; a listing's price is anyone's to read and its publisher's alone
// to set.
func TestBillingRoutesHTTP(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.publishNotes("1.0.0")
		e.publisher("beta")
		base := httpapitest.Serve(t, e.store, e.hasher, e.bill.Routes())
		w1, _ := e.store.CreateWorkspace(ctx, "w1")
		w2, _ := e.store.CreateWorkspace(ctx, "w2")
		keys := map[string]string{"": ""}
		for _, r := range core.Roles {
			keys[string(r)] = httpapitest.Key(t, e.store, e.hasher, w1.ID, r)
		}
		other := httpapitest.Key(t, e.store, e.hasher, w2.ID, core.RoleAdmin)
		call := func(method, path, token string, body any) (int, []byte) {
			t.Helper()
			var rd io.Reader
			if body != nil {
				b, _ := json.Marshal(body)
				rd = bytes.NewReader(b)
			}
			req, _ := http.NewRequest(method, base+path, rd)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, data
		}
		budget := map[string]any{"currency": "USD", "amount": 500, "hard": true}
		hook := map[string]any{"url": "https://hooks.example.com/relay"}
		plan := map[string]any{"plan": map[string]any{"kind": "per_execution", "currency": "USD", "unit_amount": 2}}
		for _, c := range []struct {
			method, path, token string
			body                any
			want                int
		}{
			{"PUT", "/v1/billing/budgets/workspace", "", budget, 401},
			{"PUT", "/v1/billing/budgets/workspace", keys["viewer"], budget, 403},
			{"PUT", "/v1/billing/budgets/workspace", keys["developer"], budget, 403},
			{"PUT", "/v1/billing/budgets/workspace", keys["admin"], budget, 200},
			{"PUT", "/v1/billing/budgets/nowhere", keys["admin"], budget, 404},
			{"PUT", "/v1/billing/budgets/workspace", keys["admin"], map[string]any{"currency": "XYZ", "amount": 5}, 400},
			{"GET", "/v1/billing/budgets", keys["viewer"], nil, 403},
			{"GET", "/v1/billing/budgets", keys["developer"], nil, 200},
			{"DELETE", "/v1/billing/budgets/workspace", other, nil, 404},
			{"PUT", "/v1/billing/alert-hook", keys["developer"], hook, 403},
			{"PUT", "/v1/billing/alert-hook", keys["admin"], map[string]any{"url": "ftp://hooks.example.com"}, 400},
			{"PUT", "/v1/billing/alert-hook", keys["admin"], hook, 200},
			{"GET", "/v1/billing/alert-hook", keys["developer"], nil, 403},
			{"GET", "/v1/billing/alert-hook", keys["admin"], nil, 200},
			{"GET", "/v1/billing/alert-hook", other, nil, 404},
			{"DELETE", "/v1/billing/alert-hook", other, nil, 404},
			{"GET", "/v1/registry/packages/acme/notes/price", "", nil, 200},
			{"GET", "/v1/registry/packages/acme/none/price", "", nil, 404},
			{"PUT", "/v1/registry/packages/acme/notes/price", "", plan, 401},
			{"PUT", "/v1/registry/packages/acme/notes/price", keys["admin"], plan, 401},
			{"PUT", "/v1/registry/packages/acme/notes/price", e.tokens["beta"], plan, 403},
			{"PUT", "/v1/registry/packages/acme/notes/price", e.tokens["acme"], map[string]any{"plan": map[string]any{"kind": "per_execution"}}, 422},
			{"PUT", "/v1/registry/packages/acme/notes/price", e.tokens["acme"], plan, 200},
			{"DELETE", "/v1/registry/packages/acme/notes/price/pending", e.tokens["beta"], nil, 403},
			{"DELETE", "/v1/registry/packages/acme/notes/price/pending", e.tokens["acme"], nil, 204},
			{"DELETE", "/v1/registry/packages/acme/notes/price/pending", e.tokens["acme"], nil, 404},
		} {
			if got, body := call(c.method, c.path, c.token, c.body); got != c.want {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, got, body, c.want)
			}
		}
		// A change refused for the key's role is audited as denied; a
		// change made, as done.
		records, _, err := e.store.ListAudit(ctx, w1.ID, core.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, r := range records {
			seen[r.Action+" "+r.Outcome]++
		}
		if seen["put /v1/billing/budgets/{scope} denied"] != 2 || seen["put /v1/billing/alert-hook denied"] != 1 ||
			seen["billing.budget.set success"] != 1 || seen["billing.alert_hook.set success"] != 1 {
			t.Errorf("w1's audit log: %v", seen)
		}

		// What w1 set, w1 reads; w2 reads nothing of it.
		var list struct {
			Data []struct {
				Scope  string
				Amount int64
				Spend  *int64
			}
		}
		_, body := call("GET", "/v1/billing/budgets", keys["developer"], nil)
		if json.Unmarshal(body, &list); len(list.Data) != 1 || list.Data[0].Amount != 500 || list.Data[0].Spend == nil || *list.Data[0].Spend != 0 {
			t.Errorf("w1's budgets: %s", body)
		}
		_, body = call("GET", "/v1/billing/budgets", other, nil)
		if string(bytes.TrimSpace(body)) != `{"data":[]}` {
			t.Errorf("w2's budgets: %s", body)
		}
		_, body = call("GET", "/v1/billing/alert-hook", keys["admin"], nil)
		if bytes.Contains(body, []byte("whsec_")) || !bytes.Contains(body, []byte("hooks.example.com")) {
			t.Errorf("the hook as read: %s", body)
		}
	})
}
