package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProblemBecomesError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"type":"urn:relay:problem:rate_limited","title":"Too Many Requests","status":429,"code":"rate_limited","detail":"slow down","request_id":"r1"}`))
	}))
	defer srv.Close()
	_, err := New(srv.URL, "k", nil).Workspace(context.Background())
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want *Error", err)
	}
	if e.Status != 429 || e.Code != "rate_limited" || e.RequestID != "r1" || e.RetryAfter != 3*time.Second {
		t.Fatalf("error %+v", e)
	}
}

func TestNonProblemErrorKeepsBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer srv.Close()
	err := New(srv.URL, "k", nil).RevokeKey(context.Background(), "x")
	var e *Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "unexpected_response" || e.Detail != "bad gateway" {
		t.Fatalf("error %+v", err)
	}
}

func TestListKeysQuery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.RawQuery; got != "cursor=abc&limit=2" {
			t.Errorf("query %q", got)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":[{"id":"a","role":"viewer"}],"next_cursor":null}`))
	}))
	defer srv.Close()
	page, err := New(srv.URL, "k", nil).ListKeys(context.Background(), 2, "abc")
	if err != nil || len(page.Data) != 1 || page.Data[0].Role != RoleViewer || page.NextCursor != "" {
		t.Fatalf("page %+v, err %v", page, err)
	}
}
