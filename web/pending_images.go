package web

// Replaced by images.go.

func (h *Handler) images(r *request) (*view, error)    { return nil, badParam("page", "not built yet") }
func (h *Handler) imagePage(r *request) (*view, error) { return nil, badParam("page", "not built yet") }
func (h *Handler) runPage(r *request) (*view, error)   { return nil, badParam("page", "not built yet") }
