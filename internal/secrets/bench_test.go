package secrets

import (
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
)

// BenchmarkDecrypt decrypts a secrets file of 20 values, as each render
// of a release with an encrypted secrets file does.
func BenchmarkDecrypt(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	var plain strings.Builder
	for i := range 20 {
		fmt.Fprintf(&plain, "key%d: secret-value-number-%d\n", i, i)
	}
	enc, err := Encrypt([]byte(plain.String()), []string{id.Recipient().String()})
	if err != nil {
		b.Fatal(err)
	}
	keys := KeysFromIdentities(id)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decrypt("f", enc, keys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMaskDiff masks a 2,000-line diff with the masker of 20 values.
func BenchmarkMaskDiff(b *testing.B) {
	vals := map[string]any{}
	for i := range 20 {
		vals[fmt.Sprint("k", i)] = fmt.Sprint("secret-value-number-", i)
	}
	m := NewMasker(vals)
	var d strings.Builder
	d.WriteString("--- live/x\n+++ repo/x\n@@ -1,1000 +1,1000 @@\n")
	for i := range 1000 {
		fmt.Fprintf(&d, "-  key%d: old-value-%d\n+  key%d: secret-value-number-%d\n", i, i, i, i%20)
	}
	diff := d.String()
	b.SetBytes(int64(len(diff)))
	b.ReportAllocs()
	for b.Loop() {
		m.MaskDiff(diff)
	}
}
