package api

import (
	_ "embed"
	"net/http"

	"sigs.k8s.io/yaml"
)

// openAPIYAML is the API's contract: every route, body and answer, kept
// beside the handlers and served at GET /api/v1/openapi.json. Tests hold
// real answers of every endpoint to it (internal/api/apitest).
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is the document as JSON, converted once.
var openAPIJSON = func() []byte {
	b, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		panic("api: openapi.yaml is not valid YAML: " + err.Error()) // caught by every test of the package
	}
	return b
}()

// OpenAPI returns the OpenAPI 3 document of the API as JSON.
func OpenAPI() []byte { return openAPIJSON }

func handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIJSON)
}
