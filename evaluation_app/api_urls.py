from django.urls import path

from evaluation_app import api, api_comparisons

urlpatterns = [
    path("evaluations", api.EvalRunListCreateApi.as_view(), name="api-evaluations"),
    path("evaluations/<int:pk>", api.EvalRunDetailApi.as_view(), name="api-evaluation"),
    path("evaluations/<int:pk>/cancel", api.EvalRunCancelApi.as_view(), name="api-evaluation-cancel"),
    path("evaluations/<int:pk>/results", api.EvalResultListApi.as_view(), name="api-evaluation-results"),
    path(
        "evaluations/<int:pk>/results/<int:result_id>/label",
        api.EvalResultLabelApi.as_view(),
        name="api-evaluation-result-label",
    ),
    path("comparisons", api_comparisons.ComparisonListCreateApi.as_view(), name="api-comparisons"),
    path("comparisons/<int:pk>", api_comparisons.ComparisonDetailApi.as_view(), name="api-comparison"),
    path(
        "comparisons/<int:pk>/items",
        api_comparisons.ComparisonItemListApi.as_view(),
        name="api-comparison-items",
    ),
]
