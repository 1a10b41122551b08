"""Task metrics, torch-free (stdlib + numpy): one definition each, used by training (core/tasks)
and by scoring a bundle on a device (edge/evaluate.py).

    bleu       corpus BLEU and chrF, equal to sacreBLEU's defaults (no sacrebleu needed)
    entities   conlleval entity chunks and entity precision / recall / F1
    numeric    perplexity and bits from nats, sentiment accuracy and score MAE, RMSE / MAPE and
               seasonal-naive forecasts
"""
