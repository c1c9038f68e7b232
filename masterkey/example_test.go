package masterkey_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/liaisonhq/liaison/masterkey"
)

func Example() {
	dir, _ := os.MkdirTemp("", "masterkey")
	defer os.RemoveAll(dir)
	k, created, _, err := masterkey.LoadOrCreate(filepath.Join(dir, "app.db.key"))
	if err != nil {
		panic(err)
	}
	sealed := k.Seal("signing_seed", []byte("0123456789abcdef0123456789abcdef"))
	// ... store sealed in the database; later:
	seed, err := k.Open("signing_seed", sealed)
	fmt.Println(created, len(seed), err)
	// Output: true 32 <nil>
}
