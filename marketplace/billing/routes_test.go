package billing

import (
	"testing"

	"github.com/relayhq/relay/schemas/schemastest"
)

// Every route of billing is in openapi.json with its role or token, and
// every operation the document says billing serves is one.
func TestRoutesDocumented(t *testing.T) {
	roles := map[string]string{
		"GET /v1/registry/packages/{publisher}/{name}/price":            "none",
		"PUT /v1/registry/packages/{publisher}/{name}/price":            "publisher",
		"DELETE /v1/registry/packages/{publisher}/{name}/price/pending": "publisher",
		"GET /v1/usage":                      "developer",
		"GET /v1/billing/invoices":           "admin",
		"GET /v1/billing/invoices/{id}":      "admin",
		"GET /v1/publisher/statements":       "publisher",
		"GET /v1/billing/budgets":            "developer",
		"PUT /v1/billing/budgets/{scope}":    "admin",
		"DELETE /v1/billing/budgets/{scope}": "admin",
		"GET /v1/billing/alert-hook":         "admin",
		"PUT /v1/billing/alert-hook":         "admin",
		"DELETE /v1/billing/alert-hook":      "admin",
	}
	schemastest.CheckRoleTable(t, "billing", (&Service{}).Routes(), roles)
}

// Billing's response schemas name the fields it writes, and require those
// it always writes.
func TestResponseSchemasMatchTypes(t *testing.T) {
	schemastest.CheckSchemaTypes(t, map[string]any{
		"Price":         Price{},
		"ScheduledPlan": Scheduled{},
		"Invoice":       Invoice{},
		"Statement":     Statement{},
		"Budget":        Budget{},
		"AlertHook":     AlertHook{},
		"PricePlan":     Plan{},
	}, nil)
}
