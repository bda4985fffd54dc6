package web

// Pages being written in this session by others; each replaces its own.

func (h *Handler) policies(r *request) (*view, error) { return nil, badParam("page", "not built yet") }
func (h *Handler) assignment(r *request) (*view, error) {
	return nil, badParam("page", "not built yet")
}
func (h *Handler) definition(r *request) (*view, error) {
	return nil, badParam("page", "not built yet")
}
