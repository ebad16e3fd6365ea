"""Rate limits and circuit state shared by processes through Redis (extra ``redis``)."""
