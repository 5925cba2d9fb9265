package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/mygitops/mgo/pkg/apitypes"
)

// Promotions lists the promotion paths with their stages and candidates,
// as far as the token may see them.
func (c *Client) Promotions(ctx context.Context) (*apitypes.PromotionPaths, error) {
	var p apitypes.PromotionPaths
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/promotions", nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Promotion returns one candidate.
func (c *Client) Promotion(ctx context.Context, id string) (*apitypes.Promotion, error) {
	var p apitypes.Promotion
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/promotions/"+url.PathEscape(id), nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Approve lets a candidate waiting for an approve call go on.
func (c *Client) Approve(ctx context.Context, id, comment string) (*apitypes.Promotion, error) {
	return c.decide(ctx, id, "approve", comment)
}

// Reject stops a candidate.
func (c *Client) Reject(ctx context.Context, id, comment string) (*apitypes.Promotion, error) {
	return c.decide(ctx, id, "reject", comment)
}

func (c *Client) decide(ctx context.Context, id, what, comment string) (*apitypes.Promotion, error) {
	var p apitypes.Promotion
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/promotions/"+url.PathEscape(id)+"/"+what, nil, apitypes.PromotionDecision{Comment: comment}, &p)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Promote starts a manual promotion of what runs in the cluster before
// req.To (with req.Wait, the answer comes when it has ended).
func (c *Client) Promote(ctx context.Context, req apitypes.PromoteRequest) (*apitypes.Promotion, error) {
	var p apitypes.Promotion
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/promotions", nil, req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
