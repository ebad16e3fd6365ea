"""User feedback: ratings and thumbs tied to a request id, kept by a sink."""

from _run import run, target

from ailib_anyio import open_client
from ailib_anyio.feedback import (
    InMemoryFeedbackSink,
    RatingFeedback,
    ThumbsFeedback,
    get_events_by_request,
    report_feedback,
    set_feedback_sink,
)


async def main() -> None:
    set_feedback_sink(InMemoryFeedbackSink(max_events=1000))
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        reply = await client.chat().user("2+2?").execute()
    await report_feedback(RatingFeedback(request_id=reply.request_id, rating=5, comment="Great!"))
    await report_feedback(ThumbsFeedback(request_id=reply.request_id, is_positive=True))
    events = get_events_by_request(reply.request_id)
    print("feedback:", [type(e).__name__ for e in events])


run(main)
