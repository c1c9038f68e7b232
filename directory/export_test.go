package directory

// Test hooks, kept out of the API.

func (c *Client) setAuthMode(m int) { c.authMode = m }
