package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/mygitops/mgo/internal/secrets"
)

// A request is checked against the releases' decrypted secrets files: a
// file that does not decrypt with mgo's keys, or whose MAC fails, refuses
// the deploy (ErrUnprocessable, naming the file) before anything is
// committed; an intact one lets it through, and the deploy edits only the
// values file.
func TestEncryptedSecretsAreCheckedBeforeTheCommit(t *testing.T) {
	const secretsFile = "installations/prod/app-secrets.yaml"
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := secrets.Encrypt([]byte("db:\n  password: s3cr3t-pass\n"), []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.LoadKeys("", func(name string) string {
		if name == secrets.EnvAgeKey {
			return id.String()
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	wrongKeys, err := secrets.LoadKeys("", func(name string) string {
		if name == secrets.EnvAgeKey {
			return other.String()
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	// Tampering: one character of the encrypted value changed.
	i := strings.Index(string(enc), "ENC[AES256_GCM,data:") + len("ENC[AES256_GCM,data:")
	tampered := []byte(string(enc))
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}

	for _, c := range []struct {
		name    string
		file    []byte
		keys    secrets.Keys
		refused string
	}{
		{"intact", enc, keys, ""},
		{"tampered", tampered, keys, secretsFile},
		{"wrong key", enc, wrongKeys, secretsFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := fakeFiles(autoConfig)
			files[secretsFile] = string(c.file)
			g, e := newFakeGit(t, files), &fakeSyncer{}
			store, err := OpenStore(t.TempDir() + "/deployments.db")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			svc, err := New(Config{Git: g, Engines: map[string]ClusterSyncer{"prod": e}, SecretKeys: c.keys, Store: store, SnapshotDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { svc.Run(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			d, err := svc.Submit(fakeContext(t), request("2.0.0", ""))
			if c.refused != "" {
				if !errors.Is(err, ErrUnprocessable) || !strings.Contains(err.Error(), c.refused) || strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("deploy: %v, want a refusal naming %s", err, c.refused)
				}
				if g.commits != 0 {
					t.Errorf("%d commits after a refusal", g.commits)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d, err = svc.Wait(fakeContext(t), d.ID); err != nil || d.Status != Succeeded {
				t.Fatalf("deploy: %+v %v", d, err)
			}
			if len(d.Files) != 1 || d.Files[0] != valuesFile {
				t.Errorf("the deploy changed %v, want only %s", d.Files, valuesFile)
			}
		})
	}
}
