"""User feedback collection: typed feedback events, sinks that keep or forward them, and
the process-wide ``report_feedback``. See :mod:`ailib_anyio._services._feedback`::

    from ailib_anyio.feedback import (
        InMemoryFeedbackSink, RatingFeedback, report_feedback, set_feedback_sink,
    )

    sink = InMemoryFeedbackSink(max_events=1000)
    previous = set_feedback_sink(sink)
    await report_feedback(RatingFeedback(request_id="req-123", rating=5))
    assert [e.rating for e in sink.get_events_by_request("req-123")] == [5]
    set_feedback_sink(previous)
"""

from ._core._publish import publish
from ._services._feedback import ChoiceSelectionFeedback as ChoiceSelectionFeedback
from ._services._feedback import CompositeFeedbackSink as CompositeFeedbackSink
from ._services._feedback import Feedback as Feedback
from ._services._feedback import FeedbackSink as FeedbackSink
from ._services._feedback import InMemoryFeedbackSink as InMemoryFeedbackSink
from ._services._feedback import JsonlFeedbackSink as JsonlFeedbackSink
from ._services._feedback import NoopFeedbackSink as NoopFeedbackSink
from ._services._feedback import OtelFeedbackSink as OtelFeedbackSink
from ._services._feedback import RatingFeedback as RatingFeedback
from ._services._feedback import TextFeedback as TextFeedback
from ._services._feedback import ThumbsFeedback as ThumbsFeedback
from ._services._feedback import current_traceparent as current_traceparent
from ._services._feedback import feedback_from_dict as feedback_from_dict
from ._services._feedback import get_events as get_events
from ._services._feedback import get_events_by_request as get_events_by_request
from ._services._feedback import get_feedback_sink as get_feedback_sink
from ._services._feedback import report_feedback as report_feedback
from ._services._feedback import set_feedback_sink as set_feedback_sink

__all__ = [
    "ChoiceSelectionFeedback",
    "CompositeFeedbackSink",
    "Feedback",
    "FeedbackSink",
    "InMemoryFeedbackSink",
    "JsonlFeedbackSink",
    "NoopFeedbackSink",
    "OtelFeedbackSink",
    "RatingFeedback",
    "TextFeedback",
    "ThumbsFeedback",
    "current_traceparent",
    "feedback_from_dict",
    "get_events",
    "get_events_by_request",
    "get_feedback_sink",
    "report_feedback",
    "set_feedback_sink",
]

publish(__name__, globals(), __all__)
