module example.com/vendoragent

go 1.26.0

require github.com/liaisonhq/liaison v0.0.0

// The embedding test (tunnel/connector, TestEmbedding) copies this module
// out of the checkout and points the replace at the checkout's root.
replace github.com/liaisonhq/liaison => ../../../..
