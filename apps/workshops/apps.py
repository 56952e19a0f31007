from django.apps import AppConfig


class WorkshopsConfig(AppConfig):
    name = "apps.workshops"
    label = "workshops"
    verbose_name = "Co-design workshops"

    def ready(self) -> None:
        from apps.runs.signals import run_finished

        run_finished.connect(_run_finished, dispatch_uid="workshops-ask-for-feedback")


def _run_finished(sender, run_id: int, state: str, **kwargs) -> None:
    from apps.workshops.services import workshop_run_finished

    workshop_run_finished(run_id=run_id, state=state)
