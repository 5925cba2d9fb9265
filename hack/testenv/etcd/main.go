// Command etcd runs the etcd server for the local test control plane.
//
// etcd's server module has no installable main package; this one calls the
// same entry point the released etcd binary uses.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
