package cloudapp

import "github.com/liaisonhq/liaison/tunnel/tunnelnats"

// ClusterNode is the node's NATS side (nil on a single node).
func (s *Server) ClusterNode() *tunnelnats.Node { return s.cl }
