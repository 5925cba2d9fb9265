// Package install tests what mgo ships, as a user gets it: the release
// binaries of `make dist`, the OCI image of `make image` (pushed to a
// registry and pulled back), the Dockerfile, and the Helm chart
// charts/mgo, linted, rendered and installed into a real control plane,
// whose RBAC is then proved by running mgo as the chart's service account.
// It holds no code besides its tests.
package install
