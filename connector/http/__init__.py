"""The HTTP boundary: transport, the one retry layer, pacing, breakers, and serving WSGI apps."""
