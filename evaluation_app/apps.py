from django.apps import AppConfig


class EvaluationAppConfig(AppConfig):
    name = "evaluation_app"
