"""The sans-IO core: pure, synchronous protocol logic.

Stream decoders, compiled manifest rules, the event mapper and accumulator, request
encoders and error classification. Nothing here awaits, and nothing here imports anyio or
httpx (a test proves it), so every behaviour reproduces in a plain synchronous test.
"""
