package httpapi

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// listAudit pages through the workspace's audit log, oldest first; with
// Accept: application/x-ndjson, one record per line.
func (s *Server) listAudit(c *fiber.Ctx, p *principal) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	records, next, err := s.cfg.Store.ListAudit(c.UserContext(), p.Workspace.ID, page)
	if err != nil {
		return err
	}
	if strings.Contains(c.Get(fiber.HeaderAccept), "application/x-ndjson") {
		c.Set(fiber.HeaderContentType, "application/x-ndjson")
		if next != "" {
			c.Set("Link", `</v1/audit?limit=`+strconv.Itoa(page.Limit)+`&cursor=`+url.QueryEscape(next)+`>; rel="next"`)
		}
		var b strings.Builder
		for _, r := range records {
			line, err := json.Marshal(r)
			if err != nil {
				return err
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		return c.SendString(b.String())
	}
	return c.JSON(newList(records, next))
}
