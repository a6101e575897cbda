package sink

import (
	"encoding/json"
	"net/http"
)

// WriteJSON writes v as indented JSON with status code. The HTTP sinks
// (api, history) share it here so that neither imports the other.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
