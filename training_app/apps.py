from django.apps import AppConfig


class TrainingAppConfig(AppConfig):
    name = "training_app"
