// Command mgo is the mygitops GitOps delivery service and its command line.
package main

import (
	"os"

	"github.com/mygitops/mgo/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
