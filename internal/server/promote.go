package server

import (
	"log/slog"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/forge"
	"github.com/mygitops/mgo/internal/gitrepo"
	"github.com/mygitops/mgo/internal/outbound"
	"github.com/mygitops/mgo/internal/promote"
	"github.com/mygitops/mgo/internal/reconcile"
	"github.com/mygitops/mgo/internal/repo"
)

// newPromoter assembles the promotion between clusters: the engines' watch
// caches for soaks, Helm tests in the clusters, the checks and the forges
// through their outbound lists, and the clone for merge request branches.
func newPromoter(cfg Config, svc *deploy.Service, store deploy.Store, engines map[string]*reconcile.Engine, git *gitrepo.Repo,
	notifier deploy.Notifier, refresh func(), log *slog.Logger) (*promote.Promoter, error) {
	es := map[string]promote.Engine{}
	for name, e := range engines {
		if e != nil {
			es[name] = e
		}
	}
	checks := cfg.ChecksOutbound
	if checks == nil {
		checks = &outbound.Policy{Purpose: outbound.Checks}
	}
	forges := cfg.Notify.Outbound
	if forges == nil {
		forges = &outbound.Policy{Purpose: outbound.Notifications}
	}
	policy := repo.DefaultCredentialPolicy()
	if cfg.Credentials != nil {
		policy = *cfg.Credentials
	}
	forgeClient := forges.Client(30 * time.Second)
	return promote.New(promote.Config{
		Service: svc, Store: store, Engines: es, Owns: svc.Owns, Notifier: notifier, Refresh: refresh,
		Tester:   promote.HelmTester(engines),
		Checker:  promote.HTTPChecker(checks.Client(30 * time.Second)),
		Branches: git,
		Forge: func(m repo.MergeRequestSettings) (*forge.Client, error) {
			token, err := m.Token(policy)
			if err != nil {
				return nil, err
			}
			return forge.New(forge.Config{Kind: m.Forge, BaseURL: m.URL, Project: m.Project, Token: token, Client: forgeClient})
		},
		Tick: cfg.PromotionTick, Log: log.With("component", "promote"),
	})
}
