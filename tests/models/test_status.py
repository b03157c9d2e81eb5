"""The export status enum: its exact members, their order, and which moves are forward."""

from models.status import ExportStatus


def test_status_members_are_exactly_the_design_order():
    assert [s.value for s in ExportStatus] == ["pending", "submitted", "rendering", "delivering", "success", "error"]


def test_a_status_is_reachable_only_from_earlier_unfinished_ones():
    assert ExportStatus.pending.earlier() == []
    assert ExportStatus.rendering.earlier() == [ExportStatus.pending, ExportStatus.submitted]
    assert ExportStatus.success.earlier() == [ExportStatus.pending, ExportStatus.submitted,
                                              ExportStatus.rendering, ExportStatus.delivering]
    assert ExportStatus.error.earlier() == ExportStatus.success.earlier()
    assert ExportStatus.success.is_final and ExportStatus.error.is_final
