package web

// Replaced by resource.go and fleet.go.

func (h *Handler) resourcePage(r *request) (*view, error) {
	return nil, badParam("page", "not built yet")
}
func (h *Handler) fleetPage(r *request) (*view, error) { return nil, badParam("page", "not built yet") }
