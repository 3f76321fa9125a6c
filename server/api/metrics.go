package api

import "net/http"

// tenantMetrics serves a tenant's own series (GET /v1/tenants/{tenant}/metrics)
// in the Prometheus text format. authorize has already answered another
// tenant's token with 404, as for any of that tenant's names.
func (a *API) tenantMetrics(w http.ResponseWriter, r *http.Request) error {
	snap, err := a.read(w, r)
	if err != nil {
		return err
	}
	t, err := a.tenant(snap, r)
	if err != nil {
		return err
	}
	a.cfg.TenantMetrics(t.Name).ServeHTTP(w, r)
	return nil
}
