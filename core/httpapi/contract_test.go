package httpapi

import (
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/schemas/schemastest"
)

// Each response schema of the document names exactly the fields the
// server writes, and lists as required exactly those it always writes, so
// that a generated client has them as present, and the others as
// optional.
func TestResponseSchemasMatchTypes(t *testing.T) {
	types := map[string]any{
		"Workspace":      workspaceView{},
		"RateLimit":      core.RateLimit{},
		"APIKey":         core.APIKey{},
		"CreatedKey":     createdKey{},
		"KeyList":        list[core.APIKey]{},
		"Connector":      actions.ConnectorInfo{},
		"Connection":     actions.ConnectionView{},
		"ConnectionList": list[actions.ConnectionView]{},
		"Action":         actions.ActionInfo{},
		"PreviewResult":  actions.PreviewResult{},
		"Run":            core.Run{},
		"RunError":       core.RunError{},
		"RunList":        list[core.Run]{},
		"AuditRecord":    core.AuditRecord{},
		"AuditList":      list[core.AuditRecord]{},
	}
	schemastest.CheckSchemaTypes(t, types, map[string][]string{"Run": {"duration_ms"}})
}
